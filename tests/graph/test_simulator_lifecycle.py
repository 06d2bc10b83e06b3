"""The Graph simulator's lifecycle endpoints over HTTP: removing memberships, disabling and
deleting users, sponsors, invitation redemption state, re-sent invitations and channel
renames (facts A8-A10, F), through the same pipeline as the rest (auth, throttling, faults,
write accounting)."""

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
    PAT_GUEST_EMAIL,
    PAT_GUEST_ID,
)
from graph.rate_limits import (
    IDENTITY_RU,
    IDENTITY_WRITES,
    TEAMS_OTHER,
    TEAMS_PATCH_CHANNEL,
    TENANT_WRITES,
    GraphLimits,
    charges,
)
from graph.simulator import GraphSimulator
from tests.graph.conftest import TOKEN
from tests.graph.test_simulator import (
    assert_graph_error,
    call,
    invitation,
    invite,
    member,
    private_channel,
)
from tests.support.clock import ManualClock
from tests.support.simulator import running_simulator

TEAM = MARKETING_TEAM_ID
SAM = "sam@fabrikam.example"
USER_TYPE = "#microsoft.graph.user"


def ref(object_id: str, kind: str = "users") -> dict[str, str]:
    return {"@odata.id": f"https://graph.microsoft.com/v1.0/{kind}/{object_id}"}


def team_membership(sim: GraphSimulator, user_id: str) -> str:
    return {m.user_id: m.id for m in sim.team_members(TEAM)}[user_id]


def channel_membership(sim: GraphSimulator, channel_id: str, user_id: str) -> str:
    return {m.user_id: m.id for m in sim.channel_members(TEAM, channel_id)}[user_id]


async def guest_in_team_and_channel(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> tuple[str, str]:
    """Sam invited, in the team and in a new private channel: (guest id, channel id)."""
    status, channel, _ = await call(
        http, "POST", f"/teams/{TEAM}/channels", json=private_channel("FC-9 Sam")
    )
    assert status == 201, channel
    guest = await invite(http, SAM)
    added, _, _ = await call(http, "POST", f"/teams/{TEAM}/members", json=member(guest))
    joined, _, _ = await call(
        http, "POST", f"/teams/{TEAM}/channels/{channel['id']}/members", json=member(guest)
    )
    assert (added, joined) == (201, 201)
    return guest, channel["id"]


# --- DELETE team and channel memberships (A8) ---------------------------------------------


async def test_removing_a_team_member_is_204_and_drops_only_that_membership(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    membership = team_membership(sim, ISAIAH_ID)

    status, body, _ = await call(http, "DELETE", f"/teams/{TEAM}/members/{membership}")
    _, listed, _ = await call(http, "GET", f"/teams/{TEAM}/members")

    assert (status, body) == (204, None)
    assert {m.user_id for m in sim.team_members(TEAM)} == {ALEX_ID, MEGAN_ID}
    assert {m["userId"] for m in listed["value"]} == {ALEX_ID, MEGAN_ID}
    assert sim.applied_writes()[("remove_team_member", TEAM, membership)] == 1


async def test_removing_a_team_membership_that_is_gone_is_404_not_found(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    membership = team_membership(sim, ISAIAH_ID)
    await call(http, "DELETE", f"/teams/{TEAM}/members/{membership}")

    again, body, _ = await call(http, "DELETE", f"/teams/{TEAM}/members/{membership}")
    unknown_team, team_body, _ = await call(
        http, "DELETE", f"/teams/bbbbbbbb-0000-0000-0000-00000000ffff/members/{membership}"
    )

    assert again == 404
    assert_graph_error(body, "NotFound")
    assert unknown_team == 404
    assert_graph_error(team_body, "NotFound")
    assert sim.applied_writes()[("remove_team_member", TEAM, membership)] == 1


async def test_removing_a_channel_member_is_204_and_keeps_the_team_membership(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    guest, channel_id = await guest_in_team_and_channel(sim, http)
    membership = channel_membership(sim, channel_id, guest)

    status, _, _ = await call(
        http, "DELETE", f"/teams/{TEAM}/channels/{channel_id}/members/{membership}"
    )
    again, body, _ = await call(
        http, "DELETE", f"/teams/{TEAM}/channels/{channel_id}/members/{membership}"
    )

    assert status == 204
    assert {m.user_id for m in sim.channel_members(TEAM, channel_id)} == {ALEX_ID}
    assert guest in {m.user_id for m in sim.team_members(TEAM)}
    assert again == 404
    assert_graph_error(body, "NotFound")


async def test_removing_a_member_of_a_standard_channel_is_400(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    general = sim.channels(TEAM)[0]
    membership = team_membership(sim, ISAIAH_ID)

    status, body, _ = await call(
        http, "DELETE", f"/teams/{TEAM}/channels/{general.id}/members/{membership}"
    )

    assert status == 400
    assert "private or shared" in assert_graph_error(body, "BadRequest")["message"]
    assert ISAIAH_ID in {m.user_id for m in sim.team_members(TEAM)}


async def test_removing_from_a_deleted_channel_is_404(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    channel_id = sim.add_channel(
        TEAM, "Old", membership_type="private", owners=[ALEX_ID], members=[MEGAN_ID]
    )
    membership = channel_membership(sim, channel_id, MEGAN_ID)
    sim.delete_channel(TEAM, channel_id)

    status, body, _ = await call(
        http, "DELETE", f"/teams/{TEAM}/channels/{channel_id}/members/{membership}"
    )

    assert status == 404
    assert_graph_error(body, "NotFound")


async def test_the_last_owner_of_a_private_channel_cannot_be_removed(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    channel_id = sim.add_channel(
        TEAM, "Two owners", membership_type="private", owners=[ALEX_ID, MEGAN_ID]
    )
    path = f"/teams/{TEAM}/channels/{channel_id}/members"

    first, _, _ = await call(
        http, "DELETE", f"{path}/{channel_membership(sim, channel_id, ALEX_ID)}"
    )
    last, body, _ = await call(
        http, "DELETE", f"{path}/{channel_membership(sim, channel_id, MEGAN_ID)}"
    )

    assert first == 204
    assert last == 400
    assert "last owner" in assert_graph_error(body, "BadRequest")["message"]
    [owner] = sim.channel_members(TEAM, channel_id)
    assert (owner.user_id, owner.roles) == (MEGAN_ID, ["owner"])


async def test_a_shared_channel_may_lose_its_last_owner(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    # Facts A8 names the rule for private channels only.
    channel_id = sim.add_channel(TEAM, "Partners", membership_type="shared", owners=[ALEX_ID])

    status, _, _ = await call(
        http,
        "DELETE",
        f"/teams/{TEAM}/channels/{channel_id}/members/"
        f"{channel_membership(sim, channel_id, ALEX_ID)}",
    )

    assert status == 204
    assert sim.channel_members(TEAM, channel_id) == []


async def test_a_failed_removal_changes_nothing_and_is_not_an_applied_write(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    sim.inject_fault("DELETE", "/teams/*/members/*", 503)
    membership = team_membership(sim, ISAIAH_ID)

    status, body, _ = await call(http, "DELETE", f"/teams/{TEAM}/members/{membership}")

    assert status == 503
    assert_graph_error(body, "ServiceUnavailable")
    assert ISAIAH_ID in {m.user_id for m in sim.team_members(TEAM)}
    assert sim.applied_writes() == {}
    assert sim.requests[-1].outcome == "scripted"


# --- PATCH /users/{id} accountEnabled (A9) --------------------------------------------------


async def test_disabling_a_user_is_204_and_then_member_adds_are_404_until_re_enabled(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    # The SDK sends the entity's @odata.type along.
    disable = {"@odata.type": USER_TYPE, "accountEnabled": False}

    status, body, _ = await call(http, "PATCH", f"/users/{LEE_ID}", json=disable)
    _, shown, _ = await call(
        http, "GET", f"/users/{LEE_ID}", params={"$select": "id,accountEnabled"}
    )
    refused, error, _ = await call(http, "POST", f"/teams/{TEAM}/members", json=member(LEE_ID))
    enabled, _, _ = await call(http, "PATCH", f"/users/{LEE_ID}", json={"accountEnabled": True})
    added, _, _ = await call(http, "POST", f"/teams/{TEAM}/members", json=member(LEE_ID))

    assert (status, body) == (204, None)
    assert shown["accountEnabled"] is False
    assert refused == 404
    assert_graph_error(error, "NotFound")
    assert enabled == 204
    assert added == 201
    user = sim.user(LEE_ID)
    assert user is not None and user.account_enabled is True
    writes = sim.applied_writes()
    assert writes[("account_enabled", LEE_ID, "false")] == 1
    assert writes[("account_enabled", LEE_ID, "true")] == 1


async def test_a_disabled_user_cannot_own_a_new_private_channel(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    await call(http, "PATCH", f"/users/{ALEX_ID}", json={"accountEnabled": False})

    status, body, _ = await call(
        http, "POST", f"/teams/{TEAM}/channels", json=private_channel("FC-10")
    )

    assert status == 404
    assert_graph_error(body, "NotFound")


@pytest.mark.parametrize(
    ("patch", "code"),
    [
        ({"accountEnabled": "false"}, "BadRequest"),
        ({"accountEnabled": False, "favouriteColour": "blue"}, "Request_BadRequest"),
        ({"accountEnabled": False, "displayName": "Lee"}, "BadRequest"),
        ({"@odata.type": "#microsoft.graph.group", "accountEnabled": False}, "BadRequest"),
    ],
)
async def test_patch_user_rejects_bad_values_and_unmodelled_properties_and_changes_nothing(
    sim: GraphSimulator, http: aiohttp.ClientSession, patch: dict[str, Any], code: str
) -> None:
    status, body, _ = await call(http, "PATCH", f"/users/{LEE_ID}", json=patch)

    assert status == 400
    assert_graph_error(body, code)
    user = sim.user(LEE_ID)
    assert user is not None and user.account_enabled is True
    assert sim.applied_writes() == {}


async def test_patch_of_a_missing_user_is_404_request_resource_not_found(
    http: aiohttp.ClientSession,
) -> None:
    status, body, _ = await call(
        http,
        "PATCH",
        "/users/aaaaaaaa-0000-0000-0000-00000000ffff",
        json={"accountEnabled": False},
    )

    assert status == 404
    assert_graph_error(body, "Request_ResourceNotFound")


# --- DELETE /users/{id} (A10) ---------------------------------------------------------------


async def test_deleting_a_guest_soft_deletes_it_and_drops_its_memberships(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    guest, channel_id = await guest_in_team_and_channel(sim, http)

    status, _, _ = await call(http, "DELETE", f"/users/{guest}")
    lookup, body, _ = await call(http, "GET", f"/users/{guest}")
    _, by_mail, _ = await call(http, "GET", "/users", params={"$filter": f"mail eq '{SAM}'"})
    _, by_other, _ = await call(
        http, "GET", "/users", params={"$filter": f"otherMails/any(x:x eq '{SAM}')"}
    )
    _, everyone, _ = await call(http, "GET", "/users")
    again, _, _ = await call(http, "DELETE", f"/users/{guest}")

    assert status == 204
    assert lookup == 404
    assert_graph_error(body, "Request_ResourceNotFound")
    assert by_mail["value"] == [] and by_other["value"] == []
    assert guest not in {u["id"] for u in everyone["value"]}
    assert sim.user(guest) is None and guest not in sim.users
    deleted = sim.deleted_users()
    assert list(deleted) == [guest]
    assert deleted[guest].deleted_date_time is not None
    assert deleted[guest].other_mails == [SAM]
    assert guest not in {m.user_id for m in sim.team_members(TEAM)}
    assert {m.user_id for m in sim.channel_members(TEAM, channel_id)} == {ALEX_ID}
    assert again == 404
    assert sim.applied_writes()[("delete_user", guest)] == 1


async def test_inviting_a_deleted_guests_email_again_creates_a_new_guest(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    first = await invite(http, SAM)
    await call(http, "DELETE", f"/users/{first}")

    second = await invite(http, SAM)

    assert second != first
    assert sim.user(second) is not None
    assert first in sim.deleted_users()


# --- sponsors (F) ---------------------------------------------------------------------------


async def test_adding_a_sponsor_is_204_and_lists_it_as_a_typed_user(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await call(
        http, "POST", f"/users/{PAT_GUEST_ID}/sponsors/$ref", json=ref(ALEX_ID)
    )
    _, listed, _ = await call(http, "GET", f"/users/{PAT_GUEST_ID}/sponsors")
    _, selected, _ = await call(
        http, "GET", f"/users/{PAT_GUEST_ID}/sponsors", params={"$select": "id"}
    )

    assert (status, body) == (204, None)
    assert sim.sponsors(PAT_GUEST_ID) == [ALEX_ID]
    [sponsor] = listed["value"]
    assert (sponsor["@odata.type"], sponsor["id"]) == (USER_TYPE, ALEX_ID)
    assert sponsor["displayName"] == "Alex Wilber"
    assert selected["value"] == [{"@odata.type": USER_TYPE, "id": ALEX_ID}]
    assert sim.applied_writes() == {("sponsor", PAT_GUEST_ID, ALEX_ID): 1}


async def test_sponsor_reference_may_use_the_key_syntax_and_a_group(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    path = f"/users/{PAT_GUEST_ID}/sponsors/$ref"
    user_ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/users('{MEGAN_ID}')"}

    by_key, _, _ = await call(http, "POST", path, json=user_ref)
    group, _, _ = await call(http, "POST", path, json=ref(TEAM, "groups"))
    _, listed, _ = await call(http, "GET", f"/users/{PAT_GUEST_ID}/sponsors")

    assert (by_key, group) == (204, 204)
    assert sim.sponsors(PAT_GUEST_ID) == [MEGAN_ID, TEAM]
    assert [(s["@odata.type"], s["id"]) for s in listed["value"]] == [
        (USER_TYPE, MEGAN_ID),
        ("#microsoft.graph.group", TEAM),
    ]


async def test_adding_an_existing_sponsor_again_is_400_references_already_exist(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    path = f"/users/{PAT_GUEST_ID}/sponsors/$ref"
    await call(http, "POST", path, json=ref(ALEX_ID))

    status, body, _ = await call(http, "POST", path, json=ref(ALEX_ID))

    assert status == 400
    message = assert_graph_error(body, "Request_BadRequest")["message"]
    assert message.startswith("One or more added object references already exist")
    assert sim.sponsors(PAT_GUEST_ID) == [ALEX_ID]


async def test_an_unknown_sponsor_or_guest_is_404_and_records_nothing(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    missing = "aaaaaaaa-0000-0000-0000-00000000ffff"

    no_sponsor, body, _ = await call(
        http, "POST", f"/users/{PAT_GUEST_ID}/sponsors/$ref", json=ref(missing)
    )
    no_guest, _, _ = await call(http, "POST", f"/users/{missing}/sponsors/$ref", json=ref(ALEX_ID))
    no_list, _, _ = await call(http, "GET", f"/users/{missing}/sponsors")

    assert (no_sponsor, no_guest, no_list) == (404, 404, 404)
    assert missing in assert_graph_error(body, "Request_ResourceNotFound")["message"]
    assert sim.sponsors(PAT_GUEST_ID) == []


@pytest.mark.parametrize(
    "body",
    [{}, {"@odata.id": "alex"}, {"@odata.id": f"https://graph.microsoft.com/v1.0/me/{ALEX_ID}"}],
)
async def test_sponsor_reference_without_a_valid_odata_id_is_400(
    sim: GraphSimulator, http: aiohttp.ClientSession, body: dict[str, str]
) -> None:
    status, error, _ = await call(http, "POST", f"/users/{PAT_GUEST_ID}/sponsors/$ref", json=body)

    assert status == 400
    assert_graph_error(error, "Request_BadRequest")
    assert sim.sponsors(PAT_GUEST_ID) == []


async def test_a_deleted_sponsor_is_no_longer_listed(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    sim.add_sponsor(PAT_GUEST_ID, ALEX_ID)
    sim.add_sponsor(PAT_GUEST_ID, MEGAN_ID)
    sim.delete_user(ALEX_ID)

    _, listed, _ = await call(http, "GET", f"/users/{PAT_GUEST_ID}/sponsors")

    assert [s["id"] for s in listed["value"]] == [MEGAN_ID]


# --- invitation redemption state and re-sent invitations (A1, A2, F) ----------------------

STATE = {"$select": "id,externalUserState,externalUserStateChangeDateTime"}


async def test_invited_guest_is_pending_until_redeemed_and_the_state_needs_select(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    guest = await invite(http, SAM)

    _, plain, _ = await call(http, "GET", f"/users/{guest}")
    _, pending, _ = await call(http, "GET", f"/users/{guest}", params=STATE)
    sim.redeem_invitation(guest)
    _, accepted, _ = await call(http, "GET", f"/users/{guest}", params=STATE)
    _, employee, _ = await call(http, "GET", f"/users/{ALEX_ID}", params=STATE)

    assert "externalUserState" not in plain
    assert "externalUserStateChangeDateTime" not in plain
    assert pending["externalUserState"] == "PendingAcceptance"
    assert pending["externalUserStateChangeDateTime"]
    assert accepted["externalUserState"] == "Accepted"
    assert accepted["externalUserStateChangeDateTime"]
    assert (employee["externalUserState"], employee["externalUserStateChangeDateTime"]) == (
        None,
        None,
    )


def test_seeded_guests_have_redeemed_and_members_cannot_redeem(sim: GraphSimulator) -> None:
    pat = sim.user(PAT_GUEST_ID)

    assert pat is not None and pat.external_user_state == "Accepted"
    with pytest.raises(ValueError, match="not a guest"):
        sim.redeem_invitation(ALEX_ID)


async def test_resending_an_invitation_returns_the_same_guest_and_is_counted(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    first = await invite(http, SAM)
    sim.redeem_invitation(first)
    quiet = {**invitation(SAM), "sendInvitationMessage": False}

    again = await invite(http, SAM.upper())
    status, silent, _ = await call(http, "POST", "/invitations", json=quiet)
    _, state, _ = await call(http, "GET", f"/users/{first}", params=STATE)

    assert again == first
    assert (status, silent["invitedUser"]["id"]) == (201, first)
    assert sim.invitations_sent(SAM) == 2  # the quiet one sent no e-mail
    assert len(sim.invitations) == 3
    assert state["externalUserState"] == "Accepted"  # re-sending does not reset redemption
    assert sum(u.user_type == "Guest" for u in sim.users.values()) == 2
    assert sim.applied_writes()[("invitation", SAM)] == 3  # every POST is a write


async def test_reset_redemption_puts_an_accepted_guest_back_to_pending(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    body = {**invitation(PAT_GUEST_EMAIL), "resetRedemption": True}

    status, answer, _ = await call(http, "POST", "/invitations", json=body)
    _, state, _ = await call(http, "GET", f"/users/{PAT_GUEST_ID}", params=STATE)

    assert (status, answer["resetRedemption"]) == (201, True)
    assert state["externalUserState"] == "PendingAcceptance"


async def test_control_api_redeems_a_guest_and_reports_lifecycle_state(
    clock: ManualClock,
) -> None:
    async with (
        running_simulator(clock=clock, control_api=True) as sim,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http,
    ):
        assert sim.base_url is not None
        root = sim.base_url.removesuffix("/v1.0")
        async with http.post(f"{sim.base_url}/invitations", json=invitation(SAM)) as response:
            guest = (await response.json())["invitedUser"]["id"]
        sim.add_sponsor(guest, ALEX_ID)
        sim.delete_user(LEE_ID)

        async with http.post(f"{root}/_control/redeem", json={"user_id": guest}) as response:
            redeemed = response.status
        async with http.post(f"{root}/_control/redeem", json={"user_id": ALEX_ID}) as response:
            member_refused = response.status
        async with http.post(f"{root}/_control/redeem", json={"user_id": "nobody"}) as response:
            unknown = response.status
        async with http.get(f"{root}/_control/state") as response:
            state = await response.json()

    assert (redeemed, member_refused, unknown) == (200, 400, 404)
    assert state["external_user_states"][guest] == "Accepted"
    assert state["sponsors"] == {guest: [ALEX_ID]}
    assert state["deleted_users"] == [LEE_ID]


# --- PATCH channel displayName --------------------------------------------------------------


async def test_renaming_a_channel_is_204_and_it_is_listed_under_the_new_name(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    _, created, _ = await call(
        http, "POST", f"/teams/{TEAM}/channels", json=private_channel("FC-11 Sam")
    )
    path = f"/teams/{TEAM}/channels/{created['id']}"

    status, body, _ = await call(http, "PATCH", path, json={"displayName": "FC-11 Sam (ended)"})
    _, found, _ = await call(
        http,
        "GET",
        f"/teams/{TEAM}/channels",
        params={"$filter": "displayName eq 'FC-11 Sam (ended)'"},
    )

    assert (status, body) == (204, None)
    assert [c["id"] for c in found["value"]] == [created["id"]]
    assert sim.channels(TEAM)[-1].display_name == "FC-11 Sam (ended)"
    assert sim.applied_writes()[("rename_channel", TEAM, created["id"], "fc-11 sam (ended)")] == 1


async def test_renaming_to_a_taken_or_deleted_channels_name_is_400_name_already_exists(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    channel_id = sim.add_channel(TEAM, "Mine", membership_type="private", owners=[ALEX_ID])
    sim.add_channel(TEAM, "Taken", membership_type="private", owners=[ALEX_ID])
    gone = sim.add_channel(TEAM, "Gone", membership_type="private", owners=[ALEX_ID])
    sim.delete_channel(TEAM, gone)
    path = f"/teams/{TEAM}/channels/{channel_id}"

    taken, body, _ = await call(http, "PATCH", path, json={"displayName": "TAKEN"})
    deleted, _, _ = await call(http, "PATCH", path, json={"displayName": "gone"})
    own_name, _, _ = await call(http, "PATCH", path, json={"displayName": "MINE"})

    assert (taken, deleted) == (400, 400)
    error = assert_graph_error(body, "NameAlreadyExists")
    assert error["message"] == "Channel name already existed, please use other name"
    assert own_name == 204  # its own name, in another case, is not taken by another channel
    assert {c.id: c.display_name for c in sim.channels(TEAM)}[channel_id] == "MINE"


@pytest.mark.parametrize("name", ["", "x" * 51, "a/b", "_hidden", "ends.", "con"])
async def test_renaming_to_an_invalid_name_is_400_and_keeps_the_old_name(
    sim: GraphSimulator, http: aiohttp.ClientSession, name: str
) -> None:
    channel_id = sim.add_channel(TEAM, "Keep me", membership_type="private", owners=[ALEX_ID])

    status, body, _ = await call(
        http, "PATCH", f"/teams/{TEAM}/channels/{channel_id}", json={"displayName": name}
    )

    assert status == 400
    assert_graph_error(body, "BadRequest")
    assert {c.id: c.display_name for c in sim.channels(TEAM)}[channel_id] == "Keep me"


async def test_renaming_an_unknown_channel_is_404_and_other_properties_are_400(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    channel_id = sim.add_channel(TEAM, "Mine", membership_type="private", owners=[ALEX_ID])

    unknown, body, _ = await call(
        http, "PATCH", f"/teams/{TEAM}/channels/19:nope@thread.tacv2", json={"displayName": "x"}
    )
    other, _, _ = await call(
        http,
        "PATCH",
        f"/teams/{TEAM}/channels/{channel_id}",
        json={"displayName": "New", "isFavoriteByDefault": True},
    )

    assert unknown == 404
    assert_graph_error(body, "NotFound")
    assert other == 400
    assert {c.id: c.display_name for c in sim.channels(TEAM)}[channel_id] == "Mine"


# --- throttling of the new endpoints (B2, B3) -------------------------------------------------


def test_lifecycle_requests_draw_from_the_documented_buckets() -> None:
    def keys(method: str, path: str, query: dict[str, str] | None = None) -> dict[str, float]:
        return {c.key: c.cost for c in charges(method, path, query)}

    identity_write = {IDENTITY_RU: 1, IDENTITY_WRITES: 1, TENANT_WRITES: 1}
    assert keys("DELETE", f"/teams/{TEAM}/members/abc=") == {f"team:{TEAM}": 1, TEAMS_OTHER: 1}
    assert keys("DELETE", f"/teams/{TEAM}/channels/19:x@thread.tacv2/members/abc=") == {
        f"team:{TEAM}": 1,
        TEAMS_OTHER: 1,
    }
    assert keys("PATCH", f"/teams/{TEAM}/channels/19:x@thread.tacv2") == {
        f"team:{TEAM}": 1,
        TEAMS_PATCH_CHANNEL: 1,
    }
    assert keys("PATCH", f"/users/{LEE_ID}") == identity_write
    assert keys("DELETE", f"/users/{LEE_ID}") == identity_write
    assert keys("POST", f"/users/{LEE_ID}/sponsors/$ref") == identity_write
    assert keys("GET", f"/users/{LEE_ID}/sponsors", {"$select": "id"}) == {IDENTITY_RU: 1}


async def test_user_writes_share_the_identity_write_quota_and_get_429(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    sim.set_limits(GraphLimits(identity_writes=(2, 150)))

    disabled, _, _ = await call(http, "PATCH", f"/users/{LEE_ID}", json={"accountEnabled": False})
    sponsored, _, _ = await call(
        http, "POST", f"/users/{PAT_GUEST_ID}/sponsors/$ref", json=ref(ALEX_ID)
    )
    throttled, body, headers = await call(http, "DELETE", f"/users/{LEE_ID}")

    assert (disabled, sponsored, throttled) == (204, 204, 429)
    assert_graph_error(body, "TooManyRequests")
    assert headers["Retry-After"].isdigit()
    assert headers["x-ms-throttle-information"] == "WriteLimitExceeded"
    assert sim.user(LEE_ID) is not None  # the throttled delete did nothing
    assert sim.requests[-1].outcome == f"throttled:{IDENTITY_WRITES}"


async def test_channel_renames_and_member_removals_count_against_the_team(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    sim.set_limits(GraphLimits(per_team=(2, 10)))
    channel_id = sim.add_channel(TEAM, "Mine", membership_type="private", owners=[ALEX_ID])
    patch = f"/teams/{TEAM}/channels/{channel_id}"

    renamed, _, _ = await call(http, "PATCH", patch, json={"displayName": "Mine 2"})
    removed, _, _ = await call(
        http, "DELETE", f"/teams/{TEAM}/members/{team_membership(sim, ISAIAH_ID)}"
    )
    throttled, body, _ = await call(http, "PATCH", patch, json={"displayName": "Mine 3"})

    assert (renamed, removed, throttled) == (204, 204, 429)
    assert_graph_error(body, "TooManyRequests")
    assert {c.id: c.display_name for c in sim.channels(TEAM)}[channel_id] == "Mine 2"


async def test_lifecycle_endpoints_need_a_bearer_token(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    no_token = {"Authorization": ""}

    patched, body, _ = await call(
        http, "PATCH", f"/users/{LEE_ID}", json={"accountEnabled": False}, headers=no_token
    )
    deleted, _, _ = await call(http, "DELETE", f"/users/{LEE_ID}", headers=no_token)

    assert (patched, deleted) == (401, 401)
    assert_graph_error(body, "InvalidAuthenticationToken")
    user = sim.user(LEE_ID)
    assert user is not None and user.account_enabled is True


async def test_a_fault_on_a_write_graph_refuses_is_not_counted_as_applied(
    sim: GraphSimulator, http: aiohttp.ClientSession
) -> None:
    """Regression: a sponsor write repeated after a 504 that had applied the first one was
    refused (400, the sponsor exists) and then answered 504 again; the simulator counted it as
    applied, and the provisioning engine's exactly-once check failed now and then."""
    sim.add_sponsor(PAT_GUEST_ID, ALEX_ID)
    sim.set_faults(timeout_rate=1.0, timeout_hang_s=0.0, applied_fault_share=1.0)
    status, _, _ = await call(
        http, "POST", f"/users/{PAT_GUEST_ID}/sponsors/$ref", json=ref(ALEX_ID)
    )
    assert status == 504
    assert [r.outcome for r in sim.requests if r.method == "POST"] == ["timeout"]
    assert sim.applied_writes() == {}
    assert sim.sponsors(PAT_GUEST_ID) == [ALEX_ID]
