"""The Graph simulator's security groups and POST /users/{id}/checkMemberGroups over HTTP:
transitive membership (nested security groups, a team's members in its Microsoft 365 group),
body validation, 404 for an unknown user, and the same pipeline as every other endpoint (auth,
scripted faults, throttling, request recording)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from graph.dev_seed import (
    ALEX_ID,
    ENGINEERING_TEAM_ID,
    ISAIAH_ID,
    LEE_ID,
    MARKETING_TEAM_ID,
    MEGAN_ID,
    NESTOR_ID,
    PAT_GUEST_ID,
)
from graph.rate_limits import IDENTITY_RU, GraphLimits
from graph.simulator import GraphSimulator
from tests.graph.conftest import TOKEN
from tests.graph.test_simulator import assert_graph_error, call
from tests.support.clock import ManualClock
from tests.support.simulator import running_simulator

# Security groups: ALL_STAFF > ENGINEERS > PLATFORM (nested two deep).
PLATFORM = "cccccccc-0000-0000-0000-000000000001"
ENGINEERS = "cccccccc-0000-0000-0000-000000000002"
ALL_STAFF = "cccccccc-0000-0000-0000-000000000003"
FINANCE = "cccccccc-0000-0000-0000-000000000004"
NO_SUCH_GROUP = "cccccccc-0000-0000-0000-00000000ffff"
MISSING_USER = "aaaaaaaa-0000-0000-0000-00000000ffff"
EVERY_GROUP = [PLATFORM, ENGINEERS, ALL_STAFF, FINANCE, MARKETING_TEAM_ID, ENGINEERING_TEAM_ID]


@pytest.fixture
def groups(sim: GraphSimulator) -> None:
    sim.add_group(PLATFORM, "Platform", [ISAIAH_ID])
    sim.add_group(ENGINEERS, "Engineers", [LEE_ID, PLATFORM])
    sim.add_group(ALL_STAFF, "All staff", [ENGINEERS, NESTOR_ID])
    sim.add_group(FINANCE, "Finance", [MEGAN_ID])


def check_body(group_ids: list[str]) -> dict[str, Any]:
    return {"groupIds": group_ids}


async def check(
    http: aiohttp.ClientSession, user: str, group_ids: list[str], *, root: str = "users"
) -> tuple[int, Any]:
    status, body, _ = await call(
        http, "POST", f"/{root}/{user}/checkMemberGroups", json=check_body(group_ids)
    )
    return status, body


# --- membership ------------------------------------------------------------------------------


@pytest.mark.usefixtures("groups")
async def test_answer_lists_the_direct_and_nested_groups_in_request_order(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    status, body = await check(http, ISAIAH_ID, EVERY_GROUP)

    assert status == 200
    # Isaiah: Platform directly, Engineers and All staff through nesting, Marketing as a team
    # member; not Finance nor Engineering.
    assert body["value"] == [PLATFORM, ENGINEERS, ALL_STAFF, MARKETING_TEAM_ID]
    assert body["@odata.context"].endswith("/v1.0/$metadata#Collection(Edm.String)")
    recorded = sim.requests[-1]
    assert (recorded.method, recorded.path, recorded.status) == (
        "POST",
        f"/v1.0/users/{ISAIAH_ID}/checkMemberGroups",
        200,
    )
    assert recorded.json == check_body(EVERY_GROUP)


@pytest.mark.usefixtures("groups")
@pytest.mark.parametrize(
    ("user", "expected"),
    [
        (LEE_ID, [ENGINEERS, ALL_STAFF, ENGINEERING_TEAM_ID]),
        (NESTOR_ID, [ALL_STAFF, ENGINEERING_TEAM_ID]),  # owner of Engineering
        (MEGAN_ID, [FINANCE, MARKETING_TEAM_ID]),
        (ALEX_ID, [MARKETING_TEAM_ID, ENGINEERING_TEAM_ID]),
        (PAT_GUEST_ID, []),
    ],
)
async def test_each_user_is_a_member_of_exactly_its_groups(
    http: aiohttp.ClientSession, user: str, expected: list[str]
) -> None:
    status, body = await check(http, user, EVERY_GROUP)

    assert (status, body["value"]) == (200, expected)


@pytest.mark.usefixtures("groups")
async def test_unknown_group_ids_are_left_out_and_ids_match_case_insensitively(
    http: aiohttp.ClientSession,
) -> None:
    status, body = await check(
        http, ISAIAH_ID, [NO_SUCH_GROUP, PLATFORM.upper(), PLATFORM, FINANCE]
    )

    assert (status, body["value"]) == (200, [PLATFORM])


@pytest.mark.usefixtures("groups")
async def test_user_principal_name_and_directory_objects_paths(
    http: aiohttp.ClientSession,
) -> None:
    by_upn = await check(http, "isaiah@contoso.com", [PLATFORM, FINANCE])
    as_object = await check(http, LEE_ID, [ENGINEERS, FINANCE], root="directoryObjects")
    # A security group's own memberships, transitively; a team's group is in no group.
    group = await check(http, PLATFORM, EVERY_GROUP, root="directoryObjects")
    team = await check(http, MARKETING_TEAM_ID, EVERY_GROUP, root="directoryObjects")

    assert (by_upn[0], by_upn[1]["value"]) == (200, [PLATFORM])
    assert (as_object[0], as_object[1]["value"]) == (200, [ENGINEERS])
    assert (group[0], group[1]["value"]) == (200, [ENGINEERS, ALL_STAFF])
    assert (team[0], team[1]["value"]) == (200, [])


async def test_group_membership_changes_show_in_the_next_check(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    sim.add_group(PLATFORM, "Platform")
    sim.add_group(ENGINEERS, "Engineers", [PLATFORM])

    before = await check(http, LEE_ID, [PLATFORM, ENGINEERS])
    sim.add_group_member(PLATFORM, LEE_ID)
    sim.add_group_member(PLATFORM, LEE_ID)  # already there: quiet
    nested = await check(http, LEE_ID, [PLATFORM, ENGINEERS])
    sim.remove_group_member(ENGINEERS, PLATFORM)
    unnested = await check(http, LEE_ID, [PLATFORM, ENGINEERS])

    assert before[1]["value"] == []
    assert nested[1]["value"] == [PLATFORM, ENGINEERS]
    assert unnested[1]["value"] == [PLATFORM]
    assert sim.group_members(PLATFORM) == [LEE_ID]
    assert sim.group_members(ENGINEERS) == []


async def test_team_membership_changes_count_for_the_teams_group(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    before = await check(http, ISAIAH_ID, [MARKETING_TEAM_ID])
    membership = {m.user_id: m.id for m in sim.team_members(MARKETING_TEAM_ID)}[ISAIAH_ID]
    deleted, _, _ = await call(http, "DELETE", f"/teams/{MARKETING_TEAM_ID}/members/{membership}")
    removed = await check(http, ISAIAH_ID, [MARKETING_TEAM_ID])

    assert before[1]["value"] == [MARKETING_TEAM_ID]
    assert deleted == 204
    assert removed[1]["value"] == []


async def test_groups_may_nest_in_a_cycle_without_hanging(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    sim.add_group(PLATFORM, "Platform", [LEE_ID])
    sim.add_group(ENGINEERS, "Engineers", [PLATFORM])
    sim.add_group_member(PLATFORM, ENGINEERS)

    status, body = await check(http, LEE_ID, [PLATFORM, ENGINEERS])

    assert (status, body["value"]) == (200, [PLATFORM, ENGINEERS])


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("groups")
async def test_unknown_or_deleted_user_is_404_request_resource_not_found(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    sim.delete_user(ISAIAH_ID)

    unknown = await check(http, MISSING_USER, [PLATFORM])
    deleted = await check(http, ISAIAH_ID, [PLATFORM])
    # /users only names users: a group id there is not found either.
    group = await check(http, ENGINEERS, [ALL_STAFF])
    unknown_object = await check(http, MISSING_USER, [PLATFORM], root="directoryObjects")

    for status, body in (unknown, deleted, group, unknown_object):
        assert status == 404
        assert_graph_error(body, "Request_ResourceNotFound")
    # Entra drops a deleted user's group memberships.
    assert sim.group_members(PLATFORM) == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "Request_BadRequest"),
        ({"groupIds": PLATFORM}, "Request_BadRequest"),
        ({"groupIds": [PLATFORM, 7]}, "Request_BadRequest"),
        ({"groupIds": None}, "Request_BadRequest"),
        ({"groupIds": []}, "Request_BadRequest"),
        ({"groupIds": ["not-a-guid"]}, "Request_BadRequest"),
        ({"groupIds": [PLATFORM], "securityEnabledOnly": True}, "BadRequest"),
        ([PLATFORM], "BadRequest"),
    ],
)
async def test_invalid_bodies_are_400(http: aiohttp.ClientSession, body: Any, code: str) -> None:
    status, answer, _ = await call(http, "POST", f"/users/{LEE_ID}/checkMemberGroups", json=body)

    assert status == 400
    assert_graph_error(answer, code)


async def test_non_json_body_is_400(http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(
        http,
        "POST",
        f"/users/{LEE_ID}/checkMemberGroups",
        data=b"groupIds=x",
        headers={"Content-Type": "application/json"},
    )

    assert status == 400
    assert_graph_error(body, "BadRequest")


async def test_twenty_ids_are_accepted_and_twenty_one_are_400(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    ids = [f"dddddddd-0000-0000-0000-{n:012d}" for n in range(21)]
    sim.add_group(ids[19], "Last of twenty", [LEE_ID])
    sim.add_group(ids[20], "Twenty-first", [LEE_ID])

    twenty = await check(http, LEE_ID, ids[:20])
    twenty_one = await check(http, LEE_ID, ids)

    assert (twenty[0], twenty[1]["value"]) == (200, [ids[19]])
    assert twenty_one[0] == 400
    assert "20" in assert_graph_error(twenty_one[1], "Request_BadRequest")["message"]


async def test_unknown_user_with_a_bad_body_is_404(http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(
        http, "POST", f"/users/{MISSING_USER}/checkMemberGroups", json={"groupIds": []}
    )

    assert status == 404
    assert_graph_error(body, "Request_ResourceNotFound")


async def test_get_is_405_and_query_options_are_unsupported(http: aiohttp.ClientSession) -> None:
    got, body, _ = await call(http, "GET", f"/users/{LEE_ID}/checkMemberGroups")
    selected, query_body, _ = await call(
        http,
        "POST",
        f"/users/{LEE_ID}/checkMemberGroups",
        params={"$select": "id"},
        json=check_body([PLATFORM]),
    )

    assert got == 405
    assert_graph_error(body, "Request_BadRequest")
    assert selected == 400
    assert_graph_error(query_body, "Request_UnsupportedQuery")


# --- the pipeline --------------------------------------------------------------------------


async def test_needs_a_bearer_token(sim: GraphSimulator, http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(
        http,
        "POST",
        f"/users/{LEE_ID}/checkMemberGroups",
        json=check_body([ENGINEERING_TEAM_ID]),
        headers={"Authorization": ""},
    )

    assert status == 401
    assert_graph_error(body, "InvalidAuthenticationToken")
    assert sim.requests[-1].path == f"/v1.0/users/{LEE_ID}/checkMemberGroups"


async def test_scripted_429_carries_an_integer_retry_after_then_answers(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    sim.inject_fault("POST", "/users/*/checkMemberGroups", 429, retry_after=3)

    status, body, headers = await call(
        http, "POST", f"/users/{LEE_ID}/checkMemberGroups", json=check_body([ENGINEERING_TEAM_ID])
    )
    again = await check(http, LEE_ID, [ENGINEERING_TEAM_ID])

    assert status == 429
    assert headers["Retry-After"] == "3"
    assert_graph_error(body, "TooManyRequests")
    assert sim.requests[0].outcome == "scripted"
    assert (again[0], again[1]["value"]) == (200, [ENGINEERING_TEAM_ID])


async def test_checks_draw_from_the_identity_resource_units_and_get_429(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    sim.set_limits(GraphLimits(identity_resource_units=(2, 10)))

    first = await check(http, LEE_ID, [ENGINEERING_TEAM_ID])
    second = await check(http, ALEX_ID, [ENGINEERING_TEAM_ID])
    status, body, headers = await call(
        http, "POST", f"/users/{LEE_ID}/checkMemberGroups", json=check_body([MARKETING_TEAM_ID])
    )

    assert (first[0], second[0], status) == (200, 200, 429)
    assert_graph_error(body, "TooManyRequests")
    assert headers["Retry-After"].isdigit()
    assert headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    assert sim.requests[-1].outcome == f"throttled:{IDENTITY_RU}"


async def test_a_check_is_not_an_applied_write(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    await check(http, LEE_ID, [ENGINEERING_TEAM_ID])

    assert sim.applied_writes() == {}


# --- seed helpers ---------------------------------------------------------------------------


def test_add_group_makes_an_id_and_validates_its_members(sim: GraphSimulator) -> None:
    made = sim.add_group(display_name="Anyone", member_ids=[LEE_ID, "lee@contoso.com"])

    assert sim.group_members(made) == [LEE_ID]  # a UPN names the same user once
    with pytest.raises(ValueError, match="GUID"):
        sim.add_group("sg-1")
    with pytest.raises(ValueError, match="exists"):
        sim.add_group(made.upper())
    with pytest.raises(ValueError, match="exists"):
        sim.add_group(MARKETING_TEAM_ID)
    with pytest.raises(ValueError, match="Microsoft 365"):
        sim.add_group(PLATFORM, member_ids=[MARKETING_TEAM_ID])
    with pytest.raises(KeyError):
        sim.add_group(PLATFORM, member_ids=[MISSING_USER])
    with pytest.raises(ValueError, match="itself"):
        sim.add_group_member(made, made)
    with pytest.raises(KeyError):
        sim.add_group_member(NO_SUCH_GROUP, LEE_ID)
    with pytest.raises(KeyError):
        sim.remove_group_member(made, ALEX_ID)
    with pytest.raises(ValueError, match="exists"):
        sim.add_team("Clash", id=made)
    assert sim.group_members(made) == [LEE_ID]


async def test_control_api_seeds_groups_and_reports_them(clock: ManualClock) -> None:
    async with (
        running_simulator(clock=clock, control_api=True) as sim,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http,
    ):
        assert sim.base_url is not None
        root = sim.base_url.removesuffix("/v1.0")
        seed = {
            "groups": [
                {"group_id": PLATFORM, "display_name": "Platform", "member_ids": [LEE_ID]},
                {"group_id": ENGINEERS, "member_ids": [PLATFORM]},
            ]
        }
        async with http.post(f"{root}/_control/seed", json=seed) as response:
            seeded = await response.json()
        async with http.post(
            f"{sim.base_url}/users/{LEE_ID}/checkMemberGroups",
            json=check_body([ENGINEERS]),
        ) as response:
            answer = await response.json()
        async with http.get(f"{root}/_control/state") as response:
            state = await response.json()

    assert seeded["groups"] == [PLATFORM, ENGINEERS]
    assert answer["value"] == [ENGINEERS]
    assert state["groups"] == {PLATFORM: [LEE_ID], ENGINEERS: [PLATFORM]}
