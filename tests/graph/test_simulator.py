"""The Graph simulator over HTTP: Graph's shapes, validation rules and scripted failures."""

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
    PAT_GUEST_EMAIL,
    PAT_GUEST_ID,
)
from graph.simulator import GraphSimulator
from tests.graph.conftest import TOKEN
from tests.support.clock import ManualClock

MEMBER_TYPE = "#microsoft.graph.aadUserConversationMember"


def bind(user_id: str) -> str:
    return f"https://graph.microsoft.com/v1.0/users('{user_id}')"


def member(user_id: str, roles: list[str] | None = None) -> dict[str, Any]:
    return {"@odata.type": MEMBER_TYPE, "user@odata.bind": bind(user_id), "roles": roles or []}


def private_channel(name: str, owner_id: str = ALEX_ID) -> dict[str, Any]:
    return {
        "@odata.type": "#Microsoft.Graph.channel",
        "displayName": name,
        "description": "freelancer channel",
        "membershipType": "private",
        "members": [member(owner_id, ["owner"])],
    }


def invitation(email: str) -> dict[str, Any]:
    return {
        "invitedUserEmailAddress": email,
        "invitedUserDisplayName": "Sam Contractor",
        "inviteRedirectUrl": "https://teams.microsoft.com",
        "sendInvitationMessage": True,
    }


async def call(
    http: aiohttp.ClientSession, method: str, path: str, **kwargs: Any
) -> tuple[int, Any, Any]:
    async with http.request(method, f"/v1.0{path}", **kwargs) as response:
        return response.status, await response.json(content_type=None), response.headers


def assert_graph_error(body: Any, code: str) -> dict[str, Any]:
    error = body["error"]
    assert error["code"] == code
    assert error["message"]
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    return error  # type: ignore[no-any-return]


async def invite(http: aiohttp.ClientSession, email: str) -> str:
    status, body, _ = await call(http, "POST", "/invitations", json=invitation(email))
    assert status == 201, body
    return body["invitedUser"]["id"]  # type: ignore[no-any-return]


# --- auth and the pipeline ---------------------------------------------------------------


async def test_request_without_bearer_token_is_401_invalid_authentication_token(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await call(http, "GET", f"/users/{ALEX_ID}", headers={"Authorization": ""})

    assert status == 401
    assert_graph_error(body, "InvalidAuthenticationToken")
    assert sim.requests[-1].path == f"/v1.0/users/{ALEX_ID}"


async def test_recorded_requests_keep_headers_but_not_the_token(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    await call(http, "GET", f"/users/{ALEX_ID}", params={"$select": "id"})

    recorded = sim.requests[-1]
    assert (recorded.method, recorded.query) == ("GET", {"$select": "id"})
    assert recorded.headers["Authorization"] == "<redacted>"
    assert TOKEN not in repr(sim.requests)
    assert sim.tokens_seen[-1] == TOKEN


async def test_unknown_segment_is_graph_400_not_aiohttp_404(http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, "GET", "/groups")

    assert status == 400
    assert "segment 'groups'" in assert_graph_error(body, "BadRequest")["message"]


async def test_injected_429_carries_integer_retry_after_and_only_fires_the_given_times(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    sim.inject_fault("GET", "/teams/*/members", 429, retry_after=7)

    status, body, headers = await call(http, "GET", f"/teams/{MARKETING_TEAM_ID}/members")
    again, _, _ = await call(http, "GET", f"/teams/{MARKETING_TEAM_ID}/members")

    assert status == 429
    assert headers["Retry-After"] == "7"
    assert_graph_error(body, "TooManyRequests")
    assert again == 200


async def test_fault_pattern_star_matches_one_segment_only(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    sim.inject_fault("*", "/teams/*/members", 503, times=5)
    status, body, _ = await call(http, "POST", "/invitations", json=invitation("a@b.example"))
    channel_members, _, _ = await call(
        http, "GET", f"/teams/{MARKETING_TEAM_ID}/channels/19:x@thread.tacv2/members"
    )
    team_members, body, _ = await call(http, "GET", f"/teams/{MARKETING_TEAM_ID}/members")

    assert status == 201
    assert channel_members == 404  # not faulted: the channel simply does not exist
    assert team_members == 503
    assert_graph_error(body, "ServiceUnavailable")


# --- users -------------------------------------------------------------------------------


async def test_user_type_is_returned_only_when_selected(http: aiohttp.ClientSession) -> None:
    _, plain, _ = await call(http, "GET", f"/users/{PAT_GUEST_ID}")
    _, selected, _ = await call(
        http, "GET", f"/users/{PAT_GUEST_ID}", params={"$select": "id,displayName,userType"}
    )

    assert "userType" not in plain and plain["mail"] == PAT_GUEST_EMAIL
    assert selected["userType"] == "Guest"
    assert set(selected) == {"@odata.context", "id", "displayName", "userType"}


async def test_missing_user_is_404_request_resource_not_found(
    http: aiohttp.ClientSession,
) -> None:
    status, body, _ = await call(http, "GET", "/users/aaaaaaaa-0000-0000-0000-00000000ffff")

    assert status == 404
    assert_graph_error(body, "Request_ResourceNotFound")


async def test_manager_is_a_typed_directory_object_and_404_when_there_is_none(
    http: aiohttp.ClientSession,
) -> None:
    status, body, _ = await call(http, "GET", f"/users/{ALEX_ID}/manager")
    none_status, _, _ = await call(http, "GET", f"/users/{NESTOR_ID}/manager")

    assert status == 200
    assert (body["@odata.type"], body["id"]) == ("#microsoft.graph.user", MEGAN_ID)
    assert none_status == 404


@pytest.mark.parametrize(
    "query",
    ["mail eq 'PAT@fabrikam.com'", "otherMails/any(x:x eq 'pat@fabrikam.com')"],
)
async def test_users_filter_by_mail_or_other_mails(
    http: aiohttp.ClientSession, query: str
) -> None:
    status, body, _ = await call(http, "GET", "/users", params={"$filter": query})

    assert status == 200
    assert [u["id"] for u in body["value"]] == [PAT_GUEST_ID]


async def test_filter_string_literal_unescapes_doubled_quotes(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    obrien = sim.add_user("Pat O'Brien", mail="o'brien@contoso.com")

    _, body, _ = await call(
        http, "GET", "/users", params={"$filter": "mail eq 'o''brien@contoso.com'"}
    )

    assert [u["id"] for u in body["value"]] == [obrien]


@pytest.mark.parametrize(
    "query",
    [
        "endsWith(mail,'@fabrikam.com')",
        "mail ne 'pat@fabrikam.com'",
        "otherMails/any(x:y eq 'pat@fabrikam.com')",
        "displayName eq 'Pat Freelance'",
    ],
)
async def test_unsupported_user_filter_is_400_request_unsupported_query(
    http: aiohttp.ClientSession, query: str
) -> None:
    status, body, _ = await call(http, "GET", "/users", params={"$filter": query})

    assert status == 400
    assert_graph_error(body, "Request_UnsupportedQuery")


# --- invitations -------------------------------------------------------------------------


async def test_invitation_creates_guest_with_graph_shape(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await call(
        http, "POST", "/invitations", json=invitation("sam@fabrikam.example")
    )

    assert status == 201
    assert body["status"] == "PendingAcceptance"
    assert body["inviteRedeemUrl"].startswith("https://login.microsoftonline.com/redeem?rd=")
    assert body["invitedUserEmailAddress"] == "sam@fabrikam.example"
    guest = sim.user(body["invitedUser"]["id"])
    assert guest is not None
    assert guest.user_type == "Guest"
    assert guest.other_mails == ["sam@fabrikam.example"]
    assert guest.user_principal_name == "sam_fabrikam.example#EXT#@contoso.onmicrosoft.com"


async def test_reinviting_an_existing_guest_returns_the_same_user(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    first = await invite(http, "sam@fabrikam.example")
    second = await invite(http, "SAM@fabrikam.example")
    seeded = await invite(http, PAT_GUEST_EMAIL)

    assert second == first
    assert seeded == PAT_GUEST_ID
    assert len(sim.invitations) == 3
    assert sum(u.user_type == "Guest" for u in sim.users.values()) == 2


async def test_invitation_without_redirect_url_is_400(http: aiohttp.ClientSession) -> None:
    body = invitation("sam@fabrikam.example")
    del body["inviteRedirectUrl"]

    status, error, _ = await call(http, "POST", "/invitations", json=body)

    assert status == 400
    assert_graph_error(error, "BadRequest")


# --- channels ----------------------------------------------------------------------------


async def test_private_channel_is_created_with_thread_id_and_owner(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await call(
        http, "POST", f"/teams/{MARKETING_TEAM_ID}/channels", json=private_channel("FC-1 Sam")
    )

    assert status == 201
    assert body["id"].startswith("19:") and body["id"].endswith("@thread.tacv2")
    assert (body["displayName"], body["membershipType"]) == ("FC-1 Sam", "private")
    [owner] = sim.channel_members(MARKETING_TEAM_ID, body["id"])
    assert (owner.user_id, owner.roles) == (ALEX_ID, ["owner"])


async def test_duplicate_channel_name_is_400_name_already_exists_case_insensitively(
    http: aiohttp.ClientSession,
) -> None:
    path = f"/teams/{MARKETING_TEAM_ID}/channels"
    await call(http, "POST", path, json=private_channel("FC-1 Sam"))

    status, body, _ = await call(http, "POST", path, json=private_channel("fc-1 SAM"))

    assert status == 400
    error = assert_graph_error(body, "NameAlreadyExists")
    assert error["message"] == "Channel name already existed, please use other name"


async def test_name_of_a_deleted_channel_stays_reserved(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    channel_id = sim.add_channel(
        MARKETING_TEAM_ID, "Old project", membership_type="private", owners=[ALEX_ID]
    )
    sim.delete_channel(MARKETING_TEAM_ID, channel_id)

    status, body, _ = await call(
        http, "POST", f"/teams/{MARKETING_TEAM_ID}/channels", json=private_channel("Old project")
    )
    _, listed, _ = await call(http, "GET", f"/teams/{MARKETING_TEAM_ID}/channels")

    assert status == 400
    assert_graph_error(body, "NameAlreadyExists")
    assert "Old project" not in [c["displayName"] for c in listed["value"]]


@pytest.mark.parametrize(
    "name",
    ["", "x" * 51, "Project: X", "a/b", "What?", "_hidden", ".dot", "ends.", "con", "a..b"],
)
async def test_invalid_channel_names_are_400(http: aiohttp.ClientSession, name: str) -> None:
    status, body, _ = await call(
        http, "POST", f"/teams/{MARKETING_TEAM_ID}/channels", json=private_channel(name)
    )

    assert status == 400
    assert_graph_error(body, "BadRequest")


async def test_fifty_character_channel_name_is_accepted(http: aiohttp.ClientSession) -> None:
    status, _, _ = await call(
        http, "POST", f"/teams/{MARKETING_TEAM_ID}/channels", json=private_channel("x" * 50)
    )

    assert status == 201


async def test_private_channel_owner_must_already_be_in_the_team(
    http: aiohttp.ClientSession,
) -> None:
    # Nestor owns Engineering but is not in Marketing.
    status, body, _ = await call(
        http,
        "POST",
        f"/teams/{MARKETING_TEAM_ID}/channels",
        json=private_channel("FC-2", owner_id=NESTOR_ID),
    )

    assert status == 400
    assert "is not part of team" in assert_graph_error(body, "BadRequest")["message"]


async def test_private_channel_without_members_is_refused_for_an_application(
    http: aiohttp.ClientSession,
) -> None:
    body = private_channel("FC-3")
    del body["members"]

    status, error, _ = await call(http, "POST", f"/teams/{MARKETING_TEAM_ID}/channels", json=body)

    assert status == 400
    message = assert_graph_error(error, "BadRequest")["message"]
    assert "no members specified when calling from an Application" in message


async def test_channel_member_without_odata_type_is_400(http: aiohttp.ClientSession) -> None:
    body = private_channel("FC-4")
    del body["members"][0]["@odata.type"]

    status, error, _ = await call(http, "POST", f"/teams/{MARKETING_TEAM_ID}/channels", json=body)

    assert status == 400
    message = assert_graph_error(error, "BadRequest")["message"]
    assert message == "'odata.type' must be specified in the request body for each member."


async def test_channel_filter_by_display_name_and_select(http: aiohttp.ClientSession) -> None:
    await call(
        http,
        "POST",
        f"/teams/{ENGINEERING_TEAM_ID}/channels",
        json=private_channel("FC-5", owner_id=LEE_ID),
    )

    status, body, _ = await call(
        http,
        "GET",
        f"/teams/{ENGINEERING_TEAM_ID}/channels",
        params={"$filter": "displayName eq 'FC-5'", "$select": "id,displayName"},
    )

    assert status == 200
    [channel] = body["value"]
    assert set(channel) == {"id", "displayName"}


async def test_shared_channel_type_needs_the_prefer_header(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    sim.add_channel(MARKETING_TEAM_ID, "Partners", membership_type="shared", owners=[ALEX_ID])
    path = f"/teams/{MARKETING_TEAM_ID}/channels"
    params = {"$filter": "displayName eq 'Partners'"}

    _, plain, _ = await call(http, "GET", path, params=params)
    _, preferred, _ = await call(
        http, "GET", path, params=params, headers={"Prefer": "include-unknown-enum-members"}
    )

    assert plain["value"][0]["membershipType"] == "unknownFutureValue"
    assert preferred["value"][0]["membershipType"] == "shared"


async def test_unknown_team_is_404(http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(
        http, "GET", "/teams/bbbbbbbb-0000-0000-0000-00000000ffff/channels"
    )

    assert status == 404
    assert_graph_error(body, "NotFound")


# --- memberships -------------------------------------------------------------------------


async def test_guest_must_be_team_member_before_channel_member(
    http: aiohttp.ClientSession,
) -> None:
    _, channel, _ = await call(
        http, "POST", f"/teams/{MARKETING_TEAM_ID}/channels", json=private_channel("FC-6")
    )
    guest = await invite(http, "sam@fabrikam.example")
    channel_members = f"/teams/{MARKETING_TEAM_ID}/channels/{channel['id']}/members"

    refused, error, _ = await call(http, "POST", channel_members, json=member(guest))
    joined, team_member, _ = await call(
        http, "POST", f"/teams/{MARKETING_TEAM_ID}/members", json=member(guest)
    )
    added, channel_member, _ = await call(http, "POST", channel_members, json=member(guest))

    assert refused == 400
    assert_graph_error(error, "BadRequest")
    assert (joined, team_member["roles"], team_member["userId"]) == (201, ["guest"], guest)
    assert team_member["@odata.type"] == MEMBER_TYPE
    assert (added, channel_member["roles"]) == (201, ["guest"])
    assert channel_member["id"] != team_member["id"]


async def test_members_filter_by_user_id(http: aiohttp.ClientSession) -> None:
    path = f"/teams/{MARKETING_TEAM_ID}/members"
    status, body, _ = await call(
        http,
        "GET",
        path,
        params={"$filter": f"(microsoft.graph.aadUserConversationMember/userId eq '{ISAIAH_ID}')"},
    )
    _, everyone, _ = await call(http, "GET", path)

    assert status == 200
    assert [m["userId"] for m in body["value"]] == [ISAIAH_ID]
    assert {m["userId"] for m in everyone["value"]} == {ALEX_ID, MEGAN_ID, ISAIAH_ID}
    assert [m["roles"] for m in everyone["value"] if m["userId"] == ALEX_ID] == [["owner"]]


async def test_unsupported_members_filter_is_400(http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(
        http,
        "GET",
        f"/teams/{MARKETING_TEAM_ID}/members",
        params={"$filter": "roles/any(r:r eq 'owner')"},
    )

    assert status == 400
    assert_graph_error(body, "Request_UnsupportedQuery")


async def test_adding_to_a_standard_channel_is_400(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    general = sim.channels(MARKETING_TEAM_ID)[0]

    status, body, _ = await call(
        http,
        "POST",
        f"/teams/{MARKETING_TEAM_ID}/channels/{general.id}/members",
        json=member(ISAIAH_ID),
    )

    assert general.display_name == "General"
    assert status == 400
    assert_graph_error(body, "BadRequest")


async def test_fresh_guest_is_404_for_member_adds_until_replication_delay_passes(
    sim: GraphSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    sim.replication_delay_s = 30
    guest = await invite(http, "sam@fabrikam.example")
    path = f"/teams/{MARKETING_TEAM_ID}/members"

    clock.advance(29)
    early, body, _ = await call(http, "POST", path, json=member(guest))
    clock.advance(1)
    later, _, _ = await call(http, "POST", path, json=member(guest))

    assert early == 404
    assert_graph_error(body, "NotFound")
    assert later == 201


async def test_adding_a_disabled_user_is_404(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    sim.set_account_enabled(LEE_ID, False)

    status, body, _ = await call(
        http, "POST", f"/teams/{MARKETING_TEAM_ID}/members", json=member(LEE_ID)
    )

    assert status == 404
    assert_graph_error(body, "NotFound")


async def test_guest_team_add_forbidden_is_403_unknown_error_for_guests_only(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    sim.guest_team_add_forbidden = True
    path = f"/teams/{MARKETING_TEAM_ID}/members"

    guest_status, body, _ = await call(http, "POST", path, json=member(PAT_GUEST_ID))
    member_status, _, _ = await call(http, "POST", path, json=member(LEE_ID))

    assert guest_status == 403
    assert assert_graph_error(body, "Forbidden")["message"] == "An unknown error has occurred."
    assert member_status == 201


async def test_guest_cannot_be_added_as_owner(http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(
        http, "POST", f"/teams/{MARKETING_TEAM_ID}/members", json=member(PAT_GUEST_ID, ["owner"])
    )

    assert status == 400
    assert_graph_error(body, "BadRequest")


# --- dev seed ----------------------------------------------------------------------------


def test_dev_seed_has_the_documented_people_and_teams(sim: GraphSimulator) -> None:
    users = sim.users
    assert users[ALEX_ID].manager_id == MEGAN_ID
    assert users[MEGAN_ID].manager_id == NESTOR_ID
    assert users[NESTOR_ID].manager_id is None
    assert users[ISAIAH_ID].manager_id == MEGAN_ID
    assert users[LEE_ID].manager_id == NESTOR_ID
    assert users[LEE_ID].mail == "lee@contoso.com"
    assert (users[PAT_GUEST_ID].user_type, users[PAT_GUEST_ID].mail) == ("Guest", PAT_GUEST_EMAIL)
    marketing = {m.user_id: m.roles for m in sim.team_members(MARKETING_TEAM_ID)}
    engineering = {m.user_id: m.roles for m in sim.team_members(ENGINEERING_TEAM_ID)}
    assert marketing == {ALEX_ID: ["owner"], MEGAN_ID: [], ISAIAH_ID: []}
    assert engineering == {NESTOR_ID: ["owner"], LEE_ID: [], ALEX_ID: []}
