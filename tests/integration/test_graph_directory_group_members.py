"""GraphDirectory.list_group_members over real msgraph-sdk HTTP calls against the Graph
simulator: nested groups flattened, disabled accounts skipped, @odata.nextLink paging up to the
limit, an unknown group as "no members", a team's group, and the error mapping shared with the
other calls."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from core.errors import PermanentDirectoryError, Throttled, TransientDirectoryError
from core.metrics import graph_endpoint
from core.ports import DirectoryUser
from graph.client import GraphSettings, build_graph_client, close_graph_client
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
from graph.directory import USER_FIELDS, GraphDirectory
from graph.rate_limits import IDENTITY_RU, GraphLimits, api_path
from graph.simulator import GraphSimulator, RecordedRequest
from tests.integration.conftest import GRAPH_TOKEN

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:msgraph")

# Security groups: ALL_STAFF > ENGINEERS > PLATFORM (nested two deep).
PLATFORM = "cccccccc-0000-0000-0000-000000000001"
ENGINEERS = "cccccccc-0000-0000-0000-000000000002"
ALL_STAFF = "cccccccc-0000-0000-0000-000000000003"
BIG = "cccccccc-0000-0000-0000-000000000004"
EMPTY = "cccccccc-0000-0000-0000-000000000005"
NO_SUCH_GROUP = "cccccccc-0000-0000-0000-00000000ffff"


@pytest.fixture(autouse=True)
def groups(sim: GraphSimulator) -> None:
    sim.add_group(PLATFORM, "Platform", [ISAIAH_ID])
    sim.add_group(ENGINEERS, "Engineers", [LEE_ID, PLATFORM])
    sim.add_group(ALL_STAFF, "All staff", [ENGINEERS, NESTOR_ID, ISAIAH_ID])
    sim.add_group(EMPTY, "Nobody yet")


def listings(sim: GraphSimulator) -> list[RecordedRequest]:
    return [r for r in sim.requests if "/transitiveMembers" in r.path]


def ids(users: list[DirectoryUser]) -> list[str]:
    return [u.id for u in users]


def big_group(sim: GraphSimulator, size: int, *, disabled: range = range(0)) -> list[str]:
    """A group of `size` new users; those numbered in `disabled` have their account off."""
    made = [
        sim.add_user(
            f"Member {n:03d}",
            id=f"dddddddd-0000-0000-0000-{n:012d}",
            mail=f"member{n:03d}@contoso.com",
            account_enabled=n not in disabled,
        )
        for n in range(size)
    ]
    sim.add_group(BIG, "Big", made)
    return made


# --- membership -------------------------------------------------------------------------------


async def test_nested_members_in_one_request_of_documented_shape(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    staff = await directory.list_group_members(ALL_STAFF)

    # Nestor and Isaiah directly, Lee through Engineers, Isaiah again through Platform: once.
    assert staff == [
        DirectoryUser(NESTOR_ID, "Nestor Wilke", "nestor@contoso.com", "Member", True),
        DirectoryUser(ISAIAH_ID, "Isaiah Langer", "isaiah@contoso.com", "Member", True),
        DirectoryUser(LEE_ID, "Lee Gu", "lee@contoso.com", "Member", True),
    ]
    [request] = listings(sim)
    assert request.method == "GET"
    # msgraph-sdk spells the OData cast with the namespace alias.
    assert request.path == f"/v1.0/groups/{ALL_STAFF}/transitiveMembers/graph.user"
    assert request.query == {
        "$count": "true",
        "$select": ",".join(USER_FIELDS),
        "$top": "100",
    }
    assert request.headers["ConsistencyLevel"] == "eventual"
    assert request.status == 200
    # The metrics label is a bounded template.
    assert graph_endpoint(api_path(request.path)) == "/groups/{id}/transitiveMembers/graph.user"


async def test_disabled_accounts_are_skipped(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    sim.set_account_enabled(LEE_ID, False)

    engineers = await directory.list_group_members(ENGINEERS)
    sim.set_account_enabled(LEE_ID, True)
    again = await directory.list_group_members(ENGINEERS)

    assert ids(engineers) == [ISAIAH_ID]
    assert ids(again) == [LEE_ID, ISAIAH_ID]


async def test_a_teams_group_lists_owners_and_members_guests_included(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    sim.add_team_member(ENGINEERING_TEAM_ID, PAT_GUEST_ID)

    marketing = await directory.list_group_members(MARKETING_TEAM_ID)
    engineering = await directory.list_group_members(ENGINEERING_TEAM_ID)

    assert ids(marketing) == [ALEX_ID, MEGAN_ID, ISAIAH_ID]
    assert ids(engineering) == [NESTOR_ID, LEE_ID, ALEX_ID, PAT_GUEST_ID]
    assert engineering[-1].user_type == "Guest"


async def test_an_empty_group_and_an_unknown_group_have_none(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    assert await directory.list_group_members(EMPTY) == []
    assert await directory.list_group_members(NO_SUCH_GROUP) == []
    # A user's id names no group either.
    assert await directory.list_group_members(LEE_ID) == []
    assert [r.status for r in listings(sim)] == [200, 404, 404]


async def test_a_zero_limit_or_a_blank_id_sends_nothing(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    assert await directory.list_group_members(ENGINEERS, limit=0) == []
    assert await directory.list_group_members(ENGINEERS, limit=-5) == []
    assert await directory.list_group_members("  ") == []
    assert sim.requests == []


async def test_a_malformed_group_id_is_a_permanent_400(directory: GraphDirectory) -> None:
    with pytest.raises(PermanentDirectoryError) as raised:
        await directory.list_group_members("engineers")

    assert raised.value.status == 400
    assert raised.value.code == "Request_BadRequest"
    assert "Invalid object identifier" in str(raised.value)


# --- limit and paging -------------------------------------------------------------------------


async def test_the_limit_is_respected_within_one_page(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    made = big_group(sim, 30)

    first = await directory.list_group_members(BIG, limit=1)
    some = await directory.list_group_members(BIG, limit=7)

    assert ids(first) == made[:1]
    assert ids(some) == made[:7]
    # Pages as large as the limit: one request each.
    assert [r.query["$top"] for r in listings(sim)] == ["1", "7"]


async def test_disabled_accounts_within_the_limit_cost_another_page(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    made = big_group(sim, 30, disabled=range(1, 3))

    found = await directory.list_group_members(BIG, limit=5)

    assert ids(found) == [made[0], *made[3:7]]
    assert [r.query["$top"] for r in listings(sim)] == ["5", "5"]
    assert [r.status for r in listings(sim)] == [200, 200]


async def test_next_links_are_followed_until_the_limit_with_the_header_on_every_page(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    # 160 members, 3 of them disabled: the first page of 150 holds 147 enabled users.
    made = big_group(sim, 160, disabled=range(10, 13))

    found = await directory.list_group_members(BIG, limit=150)

    enabled = [m for n, m in enumerate(made) if n not in range(10, 13)]
    assert ids(found) == enabled[:150]
    first, second = listings(sim)
    assert first.query["$top"] == "150"
    assert "$skiptoken" not in first.query
    # The second request is Graph's @odata.nextLink, as given: same query, plus the token.
    assert second.path == first.path
    assert second.query["$skiptoken"]
    assert {k: v for k, v in second.query.items() if k != "$skiptoken"} == first.query
    assert all(r.headers["ConsistencyLevel"] == "eventual" for r in (first, second))
    assert all(r.status == 200 for r in (first, second))


async def test_every_page_is_read_when_the_group_has_fewer_enabled_users_than_the_limit(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    # 25 members, 16 of them disabled: 9 enabled users over pages of 10, 10 and 5.
    made = big_group(sim, 25, disabled=range(4, 20))

    found = await directory.list_group_members(BIG, limit=10)

    assert ids(found) == [*made[:4], *made[20:]]
    assert [r.status for r in listings(sim)] == [200, 200, 200]
    assert [r.query["$top"] for r in listings(sim)] == ["10", "10", "10"]


async def test_the_page_size_is_capped_at_999(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    made = big_group(sim, 12)

    found = await directory.list_group_members(BIG, limit=5000)

    assert ids(found) == made
    [request] = listings(sim)
    assert request.query["$top"] == "999"


async def test_a_next_link_seen_before_is_not_followed_again(
    paging_graph: tuple[str, list[web.Request]],
) -> None:
    base_url, seen = paging_graph
    client = build_graph_client(GraphSettings(base_url=base_url, static_token=GRAPH_TOKEN))
    try:
        found = await GraphDirectory(client).list_group_members(ENGINEERS)
    finally:
        await close_graph_client(client)

    # Page 1 links to page 2, page 2 links back to page 2: read once. Objects that are not
    # users are skipped whatever the cast promised, agent users are users, and a user met
    # twice is listed once.
    assert ids(found) == ["user-1", "agent-1", "user-2"]
    assert [r.query.get("$skiptoken") for r in seen] == [None, "2"]
    assert all(r.headers["ConsistencyLevel"] == "eventual" for r in seen)


def _object(kind: str, object_id: str, **extra: Any) -> dict[str, Any]:
    return {"@odata.type": f"#microsoft.graph.{kind}", "id": object_id, **extra}


@pytest.fixture
async def paging_graph() -> AsyncIterator[tuple[str, list[web.Request]]]:
    """A stand-in for Graph answering the user cast with odd pages: a group and a device in
    the value, a user repeated, and a next link that points to itself."""
    seen: list[web.Request] = []

    async def transitive_users(request: web.Request) -> web.Response:
        seen.append(request)
        base = (
            f"http://{request.host}/v1.0/groups/{request.match_info['group_id']}"
            "/transitiveMembers/microsoft.graph.user"
        )
        if request.query.get("$skiptoken") is None:
            body: dict[str, Any] = {
                "value": [
                    _object("user", "user-1", displayName="One", accountEnabled=True),
                    _object("group", "group-1", displayName="A group"),
                    _object("agentUser", "agent-1", displayName="Agent", accountEnabled=True),
                ],
                "@odata.nextLink": f"{base}?$skiptoken=2",
            }
        else:
            body = {
                "value": [
                    _object("device", "device-1", displayName="A laptop"),
                    {"id": "user-2", "displayName": "Two", "accountEnabled": True},
                    _object("user", "user-1", displayName="One", accountEnabled=True),
                    _object("user", "user-3", displayName="Off", accountEnabled=False),
                ],
                "@odata.nextLink": f"{base}?$skiptoken=2",
            }
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/v1.0/groups/{group_id}/transitiveMembers/{cast}", transitive_users)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/v1.0", seen
    finally:
        await runner.cleanup()


# --- error mapping ----------------------------------------------------------------------------


async def test_429_is_throttled_with_retry_after_after_exactly_one_request(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    sim.inject_fault("GET", "/groups/*/transitiveMembers/*", 429, times=3, retry_after=2)
    started = time.monotonic()

    with pytest.raises(Throttled) as raised:
        await directory.list_group_members(ENGINEERS)

    assert raised.value.retry_after == 2
    assert raised.value.status == 429
    assert "list the members of a group" in str(raised.value)
    # Kiota's retry handler would have slept 2 s and sent it again.
    assert len(sim.requests) == 1
    assert time.monotonic() - started < 1.5


async def test_throttling_of_a_later_page_raises_throttled_not_a_partial_list(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    big_group(sim, 12, disabled=range(3))
    # One resource unit per 10 s, on the simulator's manual clock: the second page waits.
    sim.set_limits(GraphLimits(identity_resource_units=(1, 10)))

    with pytest.raises(Throttled) as raised:
        await directory.list_group_members(BIG, limit=5)

    assert raised.value.retry_after == 10
    assert [r.status for r in listings(sim)] == [200, 429]
    assert listings(sim)[1].outcome == f"throttled:{IDENTITY_RU}"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_transient(
    sim: GraphSimulator, directory: GraphDirectory, status: int
) -> None:
    sim.inject_fault("GET", "/groups/*/transitiveMembers/*", status, times=3)

    with pytest.raises(TransientDirectoryError) as raised:
        await directory.list_group_members(ENGINEERS)

    assert not isinstance(raised.value, Throttled)
    assert raised.value.status == status
    assert len(sim.requests) == 1


async def test_403_is_permanent_and_names_the_permissions(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    sim.inject_fault("GET", "/groups/*/transitiveMembers/*", 403)

    with pytest.raises(PermanentDirectoryError) as raised:
        await directory.list_group_members(ENGINEERS)

    assert raised.value.status == 403
    assert "GroupMember.Read.All" in str(raised.value)
    assert "User.Read.All" in str(raised.value)


async def test_401_is_permanent_and_points_at_the_credentials(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    sim.accepted_token = "another-token"

    with pytest.raises(PermanentDirectoryError) as raised:
        await directory.list_group_members(ENGINEERS)

    assert raised.value.status == 401
    assert "credentials" in str(raised.value)
