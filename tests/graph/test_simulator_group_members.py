"""The Graph simulator's GET /groups/{id}/transitiveMembers[/microsoft.graph.user] over HTTP:
nested groups flattened, users rendered like GET /users ($select honoured), the OData cast
(with its alias), $top and @odata.nextLink paging, $count with ConsistencyLevel, a team's
Microsoft 365 group, Graph's errors, and the shared pipeline (faults, throttling)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from graph.dev_seed import (
    ALEX_ID,
    ISAIAH_ID,
    LEE_ID,
    MARKETING_TEAM_ID,
    MEGAN_ID,
    NESTOR_ID,
    PAT_GUEST_ID,
)
from graph.rate_limits import IDENTITY_RU, GraphLimits
from graph.simulator import GraphSimulator
from tests.graph.test_simulator import assert_graph_error, call

# Security groups: ALL_STAFF > ENGINEERS > PLATFORM (nested two deep).
PLATFORM = "cccccccc-0000-0000-0000-000000000001"
ENGINEERS = "cccccccc-0000-0000-0000-000000000002"
ALL_STAFF = "cccccccc-0000-0000-0000-000000000003"
BIG = "cccccccc-0000-0000-0000-000000000004"
NO_SUCH_GROUP = "cccccccc-0000-0000-0000-00000000ffff"
USER_CAST = "microsoft.graph.user"


@pytest.fixture
def groups(sim: GraphSimulator) -> None:
    sim.add_group(PLATFORM, "Platform", [ISAIAH_ID])
    sim.add_group(ENGINEERS, "Engineers", [LEE_ID, PLATFORM])
    sim.add_group(ALL_STAFF, "All staff", [ENGINEERS, NESTOR_ID, ISAIAH_ID])


async def members(
    http: aiohttp.ClientSession,
    group_id: str,
    cast: str | None = USER_CAST,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    path = f"/groups/{group_id}/transitiveMembers" + (f"/{cast}" if cast else "")
    status, body, _ = await call(http, "GET", path, params=params or {}, headers=headers or {})
    return status, body


async def follow(http: aiohttp.ClientSession, link: str) -> tuple[int, Any]:
    async with http.get(link) as response:
        return response.status, await response.json(content_type=None)


def big_group(sim: GraphSimulator, size: int) -> list[str]:
    ids = [
        sim.add_user(f"Member {n:03d}", id=f"dddddddd-0000-0000-0000-{n:012d}")
        for n in range(size)
    ]
    sim.add_group(BIG, "Big", ids)
    return ids


# --- membership -----------------------------------------------------------------------------


@pytest.mark.usefixtures("groups")
async def test_cast_lists_the_users_of_every_nesting_level_once(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    status, body = await members(http, ALL_STAFF)

    assert status == 200
    # Direct members first, then those of Engineers, then Platform's; Isaiah is in All staff
    # directly and through Platform, and is listed once.
    assert [u["id"] for u in body["value"]] == [NESTOR_ID, ISAIAH_ID, LEE_ID]
    assert body["@odata.context"].endswith("/v1.0/$metadata#users")
    assert "@odata.nextLink" not in body
    # Rendered like GET /users: the default properties, no type annotation under a cast.
    assert set(body["value"][0]) == {
        "businessPhones",
        "displayName",
        "givenName",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
        "id",
    }
    assert body["value"][0]["displayName"] == "Nestor Wilke"
    recorded = sim.requests[-1]
    assert (recorded.method, recorded.path, recorded.status) == (
        "GET",
        f"/v1.0/groups/{ALL_STAFF}/transitiveMembers/{USER_CAST}",
        200,
    )


@pytest.mark.usefixtures("groups")
async def test_without_a_cast_nested_groups_are_listed_too_and_every_object_is_typed(
    http: aiohttp.ClientSession,
) -> None:
    status, body = await members(http, ALL_STAFF, cast=None)

    assert status == 200
    assert body["@odata.context"].endswith("/v1.0/$metadata#directoryObjects")
    assert [(o["@odata.type"], o["id"]) for o in body["value"]] == [
        ("#microsoft.graph.group", ENGINEERS),
        ("#microsoft.graph.user", NESTOR_ID),
        ("#microsoft.graph.user", ISAIAH_ID),
        ("#microsoft.graph.user", LEE_ID),
        ("#microsoft.graph.group", PLATFORM),
    ]
    assert body["value"][0]["displayName"] == "Engineers"
    assert body["value"][0]["securityEnabled"] is True


@pytest.mark.usefixtures("groups")
@pytest.mark.parametrize(
    "cast", ["microsoft.graph.user", "graph.user", "Microsoft.Graph.User", "GRAPH.USER"]
)
async def test_the_cast_may_use_the_namespace_alias_and_any_case(
    http: aiohttp.ClientSession, cast: str
) -> None:
    status, body = await members(http, ENGINEERS, cast)

    assert (status, [u["id"] for u in body["value"]]) == (200, [LEE_ID, ISAIAH_ID])


@pytest.mark.usefixtures("groups")
async def test_cast_to_groups_keeps_the_nested_groups_and_to_devices_keeps_nothing(
    http: aiohttp.ClientSession,
) -> None:
    groups_status, groups_body = await members(http, ALL_STAFF, "microsoft.graph.group")
    devices_status, devices_body = await members(http, ALL_STAFF, "microsoft.graph.device")

    assert groups_status == 200
    assert groups_body["@odata.context"].endswith("#groups")
    assert [g["id"] for g in groups_body["value"]] == [ENGINEERS, PLATFORM]
    assert (devices_status, devices_body["value"]) == (200, [])


@pytest.mark.usefixtures("groups")
async def test_select_is_honoured_and_shows_disabled_accounts(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    sim.set_account_enabled(LEE_ID, False)

    status, body = await members(
        http, ENGINEERS, params={"$select": "id,displayName,accountEnabled,userType"}
    )

    assert status == 200
    assert body["@odata.context"].endswith("#users(id,displayName,accountEnabled,userType)")
    # Graph lists disabled accounts; it is up to the caller to skip them.
    assert body["value"] == [
        {"id": LEE_ID, "displayName": "Lee Gu", "accountEnabled": False, "userType": "Member"},
        {
            "id": ISAIAH_ID,
            "displayName": "Isaiah Langer",
            "accountEnabled": True,
            "userType": "Member",
        },
    ]


@pytest.mark.usefixtures("groups")
async def test_select_without_a_cast_takes_user_and_group_properties(
    http: aiohttp.ClientSession,
) -> None:
    status, body = await members(
        http, ENGINEERS, cast=None, params={"$select": "id,accountEnabled,securityEnabled"}
    )

    assert status == 200
    assert body["value"] == [
        {"@odata.type": "#microsoft.graph.user", "id": LEE_ID, "accountEnabled": True},
        {"@odata.type": "#microsoft.graph.group", "id": PLATFORM, "securityEnabled": True},
        {"@odata.type": "#microsoft.graph.user", "id": ISAIAH_ID, "accountEnabled": True},
    ]


@pytest.mark.usefixtures("groups")
@pytest.mark.parametrize("cast", [USER_CAST, None])
async def test_selecting_an_unknown_property_is_400(
    http: aiohttp.ClientSession, cast: str | None
) -> None:
    status, body = await members(http, ENGINEERS, cast, params={"$select": "id,shoeSize"})

    assert status == 400
    assert "shoeSize" in assert_graph_error(body, "BadRequest")["message"]


async def test_a_teams_group_lists_its_owners_and_members_guests_included(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    sim.add_team_member(MARKETING_TEAM_ID, PAT_GUEST_ID)

    status, body = await members(http, MARKETING_TEAM_ID, params={"$select": "id,userType"})
    groups_status, groups_body = await members(http, MARKETING_TEAM_ID, "microsoft.graph.group")

    assert status == 200
    # Alex owns Marketing; Megan and Isaiah are members; Pat is a guest member.
    assert body["value"] == [
        {"id": ALEX_ID, "userType": "Member"},
        {"id": MEGAN_ID, "userType": "Member"},
        {"id": ISAIAH_ID, "userType": "Member"},
        {"id": PAT_GUEST_ID, "userType": "Guest"},
    ]
    # Learn: casting a Microsoft 365 group's members to groups is 400 Request_UnsupportedQuery.
    assert groups_status == 400
    assert_graph_error(groups_body, "Request_UnsupportedQuery")


async def test_membership_changes_and_deletions_show_in_the_next_listing(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    sim.add_group(PLATFORM, "Platform", [ISAIAH_ID])
    sim.add_group(ENGINEERS, "Engineers", [PLATFORM])

    before = await members(http, ENGINEERS)
    sim.add_group_member(PLATFORM, LEE_ID)
    added = await members(http, ENGINEERS)
    sim.delete_user(ISAIAH_ID)
    deleted = await members(http, ENGINEERS)
    sim.remove_group_member(ENGINEERS, PLATFORM)
    unnested = await members(http, ENGINEERS)

    assert [u["id"] for u in before[1]["value"]] == [ISAIAH_ID]
    assert [u["id"] for u in added[1]["value"]] == [ISAIAH_ID, LEE_ID]
    assert [u["id"] for u in deleted[1]["value"]] == [LEE_ID]
    assert unnested[1]["value"] == []


async def test_groups_nested_in_a_cycle_are_listed_without_hanging(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    sim.add_group(PLATFORM, "Platform", [LEE_ID])
    sim.add_group(ENGINEERS, "Engineers", [PLATFORM, ALEX_ID])
    sim.add_group_member(PLATFORM, ENGINEERS)

    status, body = await members(http, PLATFORM)

    assert (status, [u["id"] for u in body["value"]]) == (200, [LEE_ID, ALEX_ID])


# --- paging and $count ----------------------------------------------------------------------


async def test_pages_of_100_by_default_linked_by_next_link_keeping_the_query(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    ids = big_group(sim, 250)

    first = await members(http, BIG, params={"$select": "id"})
    second = await follow(http, first[1]["@odata.nextLink"])
    third = await follow(http, second[1]["@odata.nextLink"])

    assert [len(page[1]["value"]) for page in (first, second, third)] == [100, 100, 50]
    listed = [u["id"] for page in (first, second, third) for u in page[1]["value"]]
    assert listed == ids
    assert "@odata.nextLink" not in third[1]
    link = first[1]["@odata.nextLink"]
    assert link.startswith(f"{sim.base_url}/groups/{BIG}/transitiveMembers/{USER_CAST}?")
    assert "$select=id" in link and "$skiptoken=" in link
    assert sim.requests[1].query["$select"] == "id"
    assert [set(u) for u in third[1]["value"]] == [{"id"}] * 50


async def test_top_sets_the_page_size_up_to_999(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    big_group(sim, 1000)

    small = await members(http, BIG, params={"$top": "120"})
    small_next = await follow(http, small[1]["@odata.nextLink"])
    largest = await members(http, BIG, params={"$top": "999"})
    rest = await follow(http, largest[1]["@odata.nextLink"])

    assert [len(p[1]["value"]) for p in (small, small_next, largest, rest)] == [120, 120, 999, 1]
    assert "$top=120" in small[1]["@odata.nextLink"]
    assert "@odata.nextLink" not in rest[1]


@pytest.mark.usefixtures("groups")
@pytest.mark.parametrize("top", ["0", "1000", "-1", "ten"])
async def test_a_page_size_outside_1_to_999_is_400_request_unsupported_query(
    http: aiohttp.ClientSession, top: str
) -> None:
    status, body = await members(http, ENGINEERS, params={"$top": top})

    assert status == 400
    message = assert_graph_error(body, "Request_UnsupportedQuery")["message"]
    assert message == (
        f"Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive."
    )


@pytest.mark.usefixtures("groups")
async def test_a_forged_skip_token_is_400(http: aiohttp.ClientSession) -> None:
    status, body = await members(http, ENGINEERS, params={"$skiptoken": "not-a-token"})

    assert status == 400
    assert_graph_error(body, "Request_BadRequest")


@pytest.mark.usefixtures("groups")
async def test_count_needs_consistency_level_eventual(http: aiohttp.ClientSession) -> None:
    eventual = {"ConsistencyLevel": "eventual"}
    counted = await members(
        http, ALL_STAFF, params={"$count": "true", "$top": "2"}, headers=eventual
    )
    ignored = await members(http, ALL_STAFF, params={"$count": "true"})
    header_only = await members(http, ALL_STAFF, headers=eventual)

    assert counted[1]["@odata.count"] == 3
    assert len(counted[1]["value"]) == 2
    assert list(counted[1]) == ["@odata.context", "@odata.count", "@odata.nextLink", "value"]
    assert "$count=true" in counted[1]["@odata.nextLink"]
    # Without the header Graph ignores $count=true (Learn "Advanced query capabilities").
    assert "@odata.count" not in ignored[1]
    assert "@odata.count" not in header_only[1]
    assert all(answer[0] == 200 for answer in (counted, ignored, header_only))


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("groups")
async def test_unknown_group_and_a_users_id_are_404_request_resource_not_found(
    http: aiohttp.ClientSession,
) -> None:
    for group_id in (NO_SUCH_GROUP, LEE_ID):
        for cast in (USER_CAST, None):
            status, body = await members(http, group_id, cast)

            assert status == 404
            error = assert_graph_error(body, "Request_ResourceNotFound")
            assert error["message"].startswith(f"Resource '{group_id}' does not exist")


@pytest.mark.usefixtures("groups")
async def test_ids_match_case_insensitively_and_a_non_guid_is_400(
    http: aiohttp.ClientSession,
) -> None:
    upper = await members(http, ENGINEERS.upper())
    malformed = await members(http, "engineers")

    assert (upper[0], [u["id"] for u in upper[1]["value"]]) == (200, [LEE_ID, ISAIAH_ID])
    assert malformed[0] == 400
    assert (
        "Invalid object identifier"
        in assert_graph_error(malformed[1], "Request_BadRequest")["message"]
    )


@pytest.mark.usefixtures("groups")
@pytest.mark.parametrize(
    ("params", "cast", "code"),
    [
        ({"$filter": "accountEnabled eq true"}, USER_CAST, "Request_UnsupportedQuery"),
        ({"$orderby": "displayName"}, USER_CAST, "Request_UnsupportedQuery"),
        ({"$count": "maybe"}, USER_CAST, "BadRequest"),
        ({}, "microsoft.graph.shoe", "BadRequest"),
        ({}, "members", "BadRequest"),
    ],
)
async def test_unmodelled_options_and_unknown_casts_are_400(
    http: aiohttp.ClientSession, params: dict[str, str], cast: str, code: str
) -> None:
    status, body = await members(http, ENGINEERS, cast, params=params)

    assert status == 400
    assert_graph_error(body, code)


@pytest.mark.usefixtures("groups")
async def test_post_is_405(http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, "POST", f"/groups/{ENGINEERS}/transitiveMembers", json={})

    assert status == 405
    assert_graph_error(body, "Request_BadRequest")


# --- the pipeline --------------------------------------------------------------------------


@pytest.mark.usefixtures("groups")
async def test_scripted_faults_apply_and_a_listing_is_not_a_write(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    sim.inject_fault("GET", "/groups/*/transitiveMembers/*", 503)

    failed = await members(http, ENGINEERS)
    again = await members(http, ENGINEERS)

    assert failed[0] == 503
    assert_graph_error(failed[1], "ServiceUnavailable")
    assert again[0] == 200
    assert sim.requests[0].outcome == "scripted"
    assert sim.applied_writes() == {}


@pytest.mark.usefixtures("groups")
async def test_listings_draw_from_the_identity_resource_units_and_get_429(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    sim.set_limits(GraphLimits(identity_resource_units=(2, 10)))

    first = await members(http, ENGINEERS)
    second = await members(http, PLATFORM)
    status, body, headers = await call(
        http, "GET", f"/groups/{ENGINEERS}/transitiveMembers/{USER_CAST}"
    )

    assert (first[0], second[0], status) == (200, 200, 429)
    assert_graph_error(body, "TooManyRequests")
    assert headers["Retry-After"].isdigit()
    assert sim.requests[-1].outcome == f"throttled:{IDENTITY_RU}"
