"""GraphDirectory.check_member_groups over real msgraph-sdk HTTP calls against the Graph
simulator: transitive membership, 404 as "a member of none", chunks of 20 ids, and the error
mapping shared with the other calls."""

from __future__ import annotations

import time

import pytest

from core.errors import PermanentDirectoryError, Throttled, TransientDirectoryError
from graph.dev_seed import (
    ALEX_ID,
    ENGINEERING_TEAM_ID,
    ISAIAH_ID,
    LEE_ID,
    MARKETING_TEAM_ID,
    PAT_GUEST_ID,
)
from graph.directory import MAX_GROUPS_PER_CHECK, GraphDirectory
from graph.rate_limits import IDENTITY_RU, GraphLimits
from graph.simulator import GraphSimulator, RecordedRequest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:msgraph")

# Security groups: ENGINEERS contains PLATFORM (nesting) and Lee; PLATFORM contains Isaiah.
PLATFORM = "cccccccc-0000-0000-0000-000000000001"
ENGINEERS = "cccccccc-0000-0000-0000-000000000002"
FINANCE = "cccccccc-0000-0000-0000-000000000003"
MISSING_USER = "aaaaaaaa-0000-0000-0000-00000000ffff"
GROUPS = [PLATFORM, ENGINEERS, FINANCE, MARKETING_TEAM_ID, ENGINEERING_TEAM_ID]


@pytest.fixture(autouse=True)
def groups(sim: GraphSimulator) -> None:
    sim.add_group(PLATFORM, "Platform", [ISAIAH_ID])
    sim.add_group(ENGINEERS, "Engineers", [LEE_ID, PLATFORM])
    sim.add_group(FINANCE, "Finance", [ALEX_ID])


def checks(sim: GraphSimulator) -> list[RecordedRequest]:
    return [r for r in sim.requests if r.path.endswith("/checkMemberGroups")]


async def test_direct_nested_and_team_memberships_in_one_request(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    isaiah = await directory.check_member_groups(ISAIAH_ID, GROUPS)

    # Platform directly, Engineers through Platform, Marketing as a team member.
    assert isaiah == {PLATFORM, ENGINEERS, MARKETING_TEAM_ID}
    [request] = checks(sim)
    assert request.method == "POST"
    assert request.path == f"/v1.0/users/{ISAIAH_ID}/checkMemberGroups"
    assert request.json == {"groupIds": GROUPS}
    assert request.status == 200


async def test_direct_member_and_non_member(directory: GraphDirectory) -> None:
    lee = await directory.check_member_groups(LEE_ID, GROUPS)
    alex = await directory.check_member_groups(ALEX_ID, [PLATFORM, FINANCE])
    pat = await directory.check_member_groups(PAT_GUEST_ID, GROUPS)

    assert lee == {ENGINEERS, ENGINEERING_TEAM_ID}
    assert alex == {FINANCE}
    assert pat == set()


async def test_a_user_principal_name_works_like_the_id(directory: GraphDirectory) -> None:
    assert await directory.check_member_groups("isaiah@contoso.com", [ENGINEERS]) == {ENGINEERS}


async def test_unknown_user_is_a_member_of_none(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    assert await directory.check_member_groups(MISSING_USER, GROUPS) == set()
    assert [r.status for r in checks(sim)] == [404]


async def test_a_deleted_user_is_a_member_of_none(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    sim.delete_user(ISAIAH_ID)

    assert await directory.check_member_groups(ISAIAH_ID, GROUPS) == set()


async def test_no_group_ids_makes_no_request(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    assert await directory.check_member_groups(LEE_ID, []) == set()
    assert sim.requests == []


async def test_a_string_is_not_a_list_of_ids(directory: GraphDirectory) -> None:
    with pytest.raises(TypeError):
        await directory.check_member_groups(LEE_ID, ENGINEERS)


async def test_twenty_five_ids_go_in_two_requests_of_twenty_and_five(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    extra = [f"dddddddd-0000-0000-0000-{n:012d}" for n in range(20)]
    sim.add_group(extra[18], "Lee's, 19th of 25", [LEE_ID])
    ids = [*extra, *GROUPS]  # 25: ENGINEERS and the Engineering team are in the second chunk
    assert len(ids) == 25

    lee = await directory.check_member_groups(LEE_ID, ids)

    assert lee == {extra[18], ENGINEERS, ENGINEERING_TEAM_ID}
    requested = [r.json["groupIds"] for r in checks(sim)]
    assert requested == [ids[:MAX_GROUPS_PER_CHECK], ids[MAX_GROUPS_PER_CHECK:]]
    assert [len(chunk) for chunk in requested] == [20, 5]
    assert all(r.status == 200 for r in checks(sim))


async def test_duplicate_ids_are_asked_once_and_answered_as_spelt(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    extra = [f"dddddddd-0000-0000-0000-{n:012d}" for n in range(18)]
    ids = [ENGINEERS.upper(), ENGINEERS, FINANCE, FINANCE, *extra]

    lee = await directory.check_member_groups(LEE_ID, ids)

    # 22 ids but 20 distinct ones under any spelling: a single request.
    assert len(ids) == 22
    assert lee == {ENGINEERS.upper(), ENGINEERS}
    [request] = checks(sim)
    assert request.json["groupIds"] == [ENGINEERS.upper(), FINANCE, *extra]


# --- error mapping --------------------------------------------------------------------------


async def test_429_is_throttled_with_retry_after_after_exactly_one_request(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    sim.inject_fault("POST", "/users/*/checkMemberGroups", 429, times=3, retry_after=2)
    started = time.monotonic()

    with pytest.raises(Throttled) as raised:
        await directory.check_member_groups(LEE_ID, GROUPS)

    assert raised.value.retry_after == 2
    assert raised.value.status == 429
    assert "check which groups a user is a member of" in str(raised.value)
    # Kiota's retry handler would have slept 2 s and sent it again.
    assert len(sim.requests) == 1
    assert time.monotonic() - started < 1.5


async def test_throttling_of_the_second_chunk_raises_throttled_not_a_partial_answer(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    # One resource unit per 10 s, on the simulator's manual clock: the second request waits.
    sim.set_limits(GraphLimits(identity_resource_units=(1, 10)))
    ids = [*(f"dddddddd-0000-0000-0000-{n:012d}" for n in range(20)), ENGINEERS]

    with pytest.raises(Throttled) as raised:
        await directory.check_member_groups(LEE_ID, ids)

    assert raised.value.retry_after == 10
    assert [r.status for r in checks(sim)] == [200, 429]
    assert checks(sim)[1].outcome == f"throttled:{IDENTITY_RU}"


async def test_503_is_transient(sim: GraphSimulator, directory: GraphDirectory) -> None:
    sim.inject_fault("POST", "/users/*/checkMemberGroups", 503, times=3)

    with pytest.raises(TransientDirectoryError) as raised:
        await directory.check_member_groups(LEE_ID, GROUPS)

    assert not isinstance(raised.value, Throttled)
    assert raised.value.status == 503
    assert len(sim.requests) == 1


async def test_403_is_permanent_and_names_the_permissions(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    sim.inject_fault("POST", "/users/*/checkMemberGroups", 403)

    with pytest.raises(PermanentDirectoryError) as raised:
        await directory.check_member_groups(LEE_ID, GROUPS)

    assert raised.value.status == 403
    assert "GroupMember.Read.All" in str(raised.value)
    assert "Directory.Read.All" in str(raised.value)


async def test_a_malformed_group_id_is_a_permanent_400(directory: GraphDirectory) -> None:
    with pytest.raises(PermanentDirectoryError) as raised:
        await directory.check_member_groups(LEE_ID, ["engineers"])

    assert raised.value.status == 400
    assert raised.value.code == "Request_BadRequest"
    assert "Invalid object identifier" in str(raised.value)
