"""GraphDirectory's lifecycle methods over real msgraph-sdk HTTP calls against the Graph
simulator: offboarding (memberships, disabling, deleting), sponsors, invitation state,
re-sent invitations and channel renames, with their "already gone" and error mapping."""

from __future__ import annotations

import pytest

from core.errors import (
    ChannelNameTaken,
    PermanentDirectoryError,
    Throttled,
    TransientDirectoryError,
    UserGone,
)
from core.ports import DirectoryUser
from graph.dev_seed import (
    ALEX_ID,
    ISAIAH_ID,
    LEE_ID,
    MARKETING_TEAM_ID,
    MEGAN_ID,
    PAT_GUEST_EMAIL,
    PAT_GUEST_ID,
)
from graph.directory import GraphDirectory
from graph.simulator import GraphSimulator

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:msgraph")

TEAM = MARKETING_TEAM_ID
GUEST_EMAIL = "sam@fabrikam.example"
MISSING_ID = "aaaaaaaa-0000-0000-0000-00000000ffff"


async def invite_sam(directory: GraphDirectory) -> str:
    invitation = await directory.invite_guest(
        email=GUEST_EMAIL,
        display_name="Sam Contractor",
        redirect_url="https://teams.microsoft.com",
    )
    return invitation.invited_user_id


async def onboarded_sam(directory: GraphDirectory) -> tuple[str, str, str, str]:
    """Sam invited, in the team and in a new private channel: (guest, channel, team
    membership, channel membership)."""
    channel = await directory.create_private_channel(
        TEAM, display_name="FC-20 Sam", description="Sam's work", owner_id=ALEX_ID
    )
    guest = await invite_sam(directory)
    team_membership = await directory.add_team_member(TEAM, guest)
    channel_membership = await directory.add_channel_member(TEAM, channel.id, guest)
    return guest, channel.id, team_membership, channel_membership


def statuses(sim: GraphSimulator, method: str) -> list[int | None]:
    return [r.status for r in sim.requests if r.method == method]


# --- account_enabled on look-ups ------------------------------------------------------------


async def test_get_user_and_find_user_by_email_report_a_disabled_account(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    sim.set_account_enabled(PAT_GUEST_ID, False)

    pat = await directory.get_user(PAT_GUEST_ID)
    found = await directory.find_user_by_email(PAT_GUEST_EMAIL)
    alex = await directory.get_user(ALEX_ID)

    assert pat == DirectoryUser(
        PAT_GUEST_ID, "Pat Freelance", PAT_GUEST_EMAIL, "Guest", account_enabled=False
    )
    assert found == pat
    assert alex is not None and alex.account_enabled is True
    assert all("accountEnabled" in r.query["$select"].split(",") for r in sim.requests)


# --- removing memberships -------------------------------------------------------------------


async def test_remove_team_member_deletes_the_membership_and_a_second_call_is_quiet(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    membership = await directory.find_team_member(TEAM, ISAIAH_ID)
    assert membership is not None

    await directory.remove_team_member(TEAM, membership)
    await directory.remove_team_member(TEAM, membership)

    assert ISAIAH_ID not in {m.user_id for m in sim.team_members(TEAM)}
    assert await directory.find_team_member(TEAM, ISAIAH_ID) is None
    assert statuses(sim, "DELETE") == [204, 404]
    assert sim.applied_writes()[("remove_team_member", TEAM, membership)] == 1


async def test_remove_channel_member_deletes_only_the_channel_membership(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    guest, channel_id, _, channel_membership = await onboarded_sam(directory)

    await directory.remove_channel_member(TEAM, channel_id, channel_membership)
    await directory.remove_channel_member(TEAM, channel_id, channel_membership)

    assert {m.user_id for m in sim.channel_members(TEAM, channel_id)} == {ALEX_ID}
    assert guest in {m.user_id for m in sim.team_members(TEAM)}
    assert statuses(sim, "DELETE") == [204, 404]


async def test_remove_channel_member_of_a_deleted_channel_is_quiet(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    _, channel_id, _, channel_membership = await onboarded_sam(directory)
    sim.delete_channel(TEAM, channel_id)

    await directory.remove_channel_member(TEAM, channel_id, channel_membership)

    assert statuses(sim, "DELETE") == [404]


async def test_removing_the_last_owner_of_a_private_channel_is_permanent(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    _, channel_id, _, _ = await onboarded_sam(directory)
    owner = await directory.find_channel_member(TEAM, channel_id, ALEX_ID)
    assert owner is not None

    with pytest.raises(PermanentDirectoryError) as raised:
        await directory.remove_channel_member(TEAM, channel_id, owner)

    assert not isinstance(raised.value, UserGone)
    assert raised.value.status == 400
    assert "remove the guest from the private channel" in str(raised.value)
    assert "last owner" in str(raised.value)
    assert ALEX_ID in {m.user_id for m in sim.channel_members(TEAM, channel_id)}


async def test_a_503_on_removal_is_transient_not_swallowed(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    membership = await directory.find_team_member(TEAM, ISAIAH_ID)
    assert membership is not None
    sim.inject_fault("DELETE", "/teams/*/members/*", 503)

    with pytest.raises(TransientDirectoryError) as raised:
        await directory.remove_team_member(TEAM, membership)

    assert raised.value.status == 503
    assert ISAIAH_ID in {m.user_id for m in sim.team_members(TEAM)}


async def test_a_429_on_channel_member_removal_is_throttled(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    _, channel_id, _, channel_membership = await onboarded_sam(directory)
    sim.inject_fault("DELETE", "/teams/*/channels/*/members/*", 429, retry_after=3)

    with pytest.raises(Throttled) as raised:
        await directory.remove_channel_member(TEAM, channel_id, channel_membership)

    assert raised.value.retry_after == 3
    assert len(sim.channel_members(TEAM, channel_id)) == 2


# --- disabling and deleting users -----------------------------------------------------------


async def test_set_account_enabled_patches_only_account_enabled(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    await directory.set_account_enabled(PAT_GUEST_ID, False)
    disabled = sim.user(PAT_GUEST_ID)
    await directory.set_account_enabled(PAT_GUEST_ID, True)
    enabled = sim.user(PAT_GUEST_ID)

    assert disabled is not None and disabled.account_enabled is False
    assert enabled is not None and enabled.account_enabled is True
    patches = [r for r in sim.requests if r.method == "PATCH"]
    assert [r.path for r in patches] == [f"/v1.0/users/{PAT_GUEST_ID}"] * 2
    assert patches[0].json == {"@odata.type": "#microsoft.graph.user", "accountEnabled": False}
    assert [r.status for r in patches] == [204, 204]


async def test_a_disabled_guest_cannot_be_added_to_a_team(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    await directory.set_account_enabled(PAT_GUEST_ID, False)

    # Graph's 404 for a disabled user reads like a replication delay to the adapter; the
    # look-up (account_enabled) is how the caller tells the two apart.
    with pytest.raises(TransientDirectoryError):
        await directory.add_team_member(TEAM, PAT_GUEST_ID)
    pat = await directory.get_user(PAT_GUEST_ID)

    assert pat is not None and pat.account_enabled is False
    assert PAT_GUEST_ID not in {m.user_id for m in sim.team_members(TEAM)}


@pytest.mark.parametrize("enabled", [False, True])
async def test_set_account_enabled_on_a_deleted_user_raises_user_gone(
    sim: GraphSimulator, directory: GraphDirectory, enabled: bool
) -> None:
    sim.delete_user(PAT_GUEST_ID)

    with pytest.raises(UserGone) as raised:
        await directory.set_account_enabled(PAT_GUEST_ID, enabled)

    assert raised.value.status == 404
    assert raised.value.code == "Request_ResourceNotFound"
    verb = "re-enable" if enabled else "disable"
    assert f"{verb} the guest's account" in str(raised.value)
    assert "not in the directory" in str(raised.value)


async def test_a_403_on_disabling_names_the_enable_disable_permission(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    sim.inject_fault("PATCH", "/users/*", 403, code="Authorization_RequestDenied")

    with pytest.raises(PermanentDirectoryError) as raised:
        await directory.set_account_enabled(PAT_GUEST_ID, False)

    assert not isinstance(raised.value, UserGone)
    assert "User.EnableDisableAccount.All" in str(raised.value)
    user = sim.user(PAT_GUEST_ID)
    assert user is not None and user.account_enabled is True


async def test_delete_user_soft_deletes_and_a_second_call_is_quiet(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    guest, channel_id, _, _ = await onboarded_sam(directory)

    await directory.delete_user(guest)
    await directory.delete_user(guest)

    assert guest in sim.deleted_users()
    assert await directory.get_user(guest) is None
    assert await directory.find_user_by_email(GUEST_EMAIL) is None
    assert guest not in {m.user_id for m in sim.team_members(TEAM)}
    assert guest not in {m.user_id for m in sim.channel_members(TEAM, channel_id)}
    assert statuses(sim, "DELETE") == [204, 404]


async def test_a_403_on_delete_names_user_read_write_all(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    sim.inject_fault("DELETE", "/users/*", 403)

    with pytest.raises(PermanentDirectoryError) as raised:
        await directory.delete_user(PAT_GUEST_ID)

    assert "delete the guest from the directory" in str(raised.value)
    assert "User.ReadWrite.All" in str(raised.value)
    assert sim.user(PAT_GUEST_ID) is not None


# --- sponsors -------------------------------------------------------------------------------


async def test_add_sponsor_records_it_and_adding_it_again_is_quiet(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    await directory.add_sponsor(PAT_GUEST_ID, ALEX_ID)
    await directory.add_sponsor(PAT_GUEST_ID, ALEX_ID)

    assert sim.sponsors(PAT_GUEST_ID) == [ALEX_ID]
    posts = [r for r in sim.requests if r.method == "POST"]
    assert [r.status for r in posts] == [204, 400]
    # The reference names the user on the cloud the client talks to.
    assert posts[0].json == {"@odata.id": f"{sim.base_url}/users/{ALEX_ID}"}
    assert posts[0].path == f"/v1.0/users/{PAT_GUEST_ID}/sponsors/$ref"


async def test_list_sponsor_ids_returns_them_in_order_and_empty_without_any(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    await directory.add_sponsor(PAT_GUEST_ID, MEGAN_ID)
    await directory.add_sponsor(PAT_GUEST_ID, ALEX_ID)
    sim.add_sponsor(PAT_GUEST_ID, TEAM)  # a group sponsor, as an admin may add

    assert await directory.list_sponsor_ids(PAT_GUEST_ID) == [MEGAN_ID, ALEX_ID, TEAM]
    assert await directory.list_sponsor_ids(LEE_ID) == []
    listing = next(r for r in sim.requests if r.method == "GET")
    assert listing.query == {"$select": "id"}


async def test_sponsor_calls_for_a_missing_guest_or_sponsor_raise_user_gone(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    with pytest.raises(UserGone) as no_sponsor:
        await directory.add_sponsor(PAT_GUEST_ID, MISSING_ID)
    with pytest.raises(UserGone) as no_guest:
        await directory.add_sponsor(MISSING_ID, ALEX_ID)
    with pytest.raises(UserGone):
        await directory.list_sponsor_ids(MISSING_ID)

    assert MISSING_ID in str(no_sponsor.value)
    assert "record the requester as the guest's sponsor" in str(no_guest.value)
    assert sim.sponsors(PAT_GUEST_ID) == []


async def test_other_400s_on_add_sponsor_are_not_taken_for_success(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    sim.inject_fault("POST", "/users/*/sponsors/$ref", 400, message="Invalid object identifier.")

    with pytest.raises(PermanentDirectoryError) as raised:
        await directory.add_sponsor(PAT_GUEST_ID, ALEX_ID)

    assert raised.value.status == 400
    assert "Invalid object identifier." in str(raised.value)


# --- invitation state and re-sent invitations -----------------------------------------------


async def test_get_invitation_state_is_pending_until_redeemed_and_none_for_members(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    guest = await invite_sam(directory)

    pending = await directory.get_invitation_state(guest)
    sim.redeem_invitation(guest)
    accepted = await directory.get_invitation_state(guest)
    member = await directory.get_invitation_state(ALEX_ID)

    assert (pending, accepted, member) == ("PendingAcceptance", "Accepted", None)
    reads = [r for r in sim.requests if r.method == "GET"]
    assert {r.query["$select"] for r in reads} == {
        "id,externalUserState,externalUserStateChangeDateTime"
    }


async def test_get_invitation_state_of_a_deleted_guest_raises_user_gone(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    guest = await invite_sam(directory)
    await directory.delete_user(guest)

    with pytest.raises(UserGone) as raised:
        await directory.get_invitation_state(guest)

    assert "read whether the guest has accepted the invitation" in str(raised.value)


async def test_resend_invitation_mails_the_same_guest_again(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    guest = await invite_sam(directory)

    again = await directory.resend_invitation(
        email=GUEST_EMAIL,
        display_name="Sam Contractor",
        redirect_url="https://teams.microsoft.com",
    )

    assert again.invited_user_id == guest
    assert again.status == "PendingAcceptance"
    assert sim.invitations_sent(GUEST_EMAIL) == 2
    assert [r.json["sendInvitationMessage"] for r in sim.requests if r.method == "POST"] == [
        True,
        True,
    ]


async def test_a_403_on_resend_names_user_invite_all_and_what_failed(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    sim.inject_fault("POST", "/invitations", 403, code="Authorization_RequestDenied")

    with pytest.raises(PermanentDirectoryError) as raised:
        await directory.resend_invitation(
            email=PAT_GUEST_EMAIL, display_name="Pat", redirect_url="https://teams.microsoft.com"
        )

    assert "send the freelancer the invitation again" in str(raised.value)
    assert "User.Invite.All" in str(raised.value)
    assert sim.invitations_sent(PAT_GUEST_EMAIL) == 0


# --- renaming channels ----------------------------------------------------------------------


async def test_rename_channel_changes_its_name(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    _, channel_id, _, _ = await onboarded_sam(directory)

    await directory.rename_channel(TEAM, channel_id, "FC-20 Sam (ended)")
    found = await directory.find_channel(TEAM, "FC-20 Sam (ended)")

    assert found is not None and found.id == channel_id
    assert {c.id: c.display_name for c in sim.channels(TEAM)}[channel_id] == "FC-20 Sam (ended)"
    patch = next(r for r in sim.requests if r.method == "PATCH")
    assert patch.json == {"displayName": "FC-20 Sam (ended)"}


async def test_rename_channel_to_a_taken_name_raises_channel_name_taken(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    _, channel_id, _, _ = await onboarded_sam(directory)
    sim.add_channel(TEAM, "Taken", membership_type="private", owners=[ALEX_ID])

    with pytest.raises(ChannelNameTaken) as raised:
        await directory.rename_channel(TEAM, channel_id, "taken")

    assert (raised.value.status, raised.value.code) == (400, "NameAlreadyExists")
    assert "rename the private channel" in str(raised.value)
    assert {c.id: c.display_name for c in sim.channels(TEAM)}[channel_id] == "FC-20 Sam"


async def test_rename_of_an_unknown_channel_or_to_a_bad_name_is_permanent(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    _, channel_id, _, _ = await onboarded_sam(directory)

    with pytest.raises(PermanentDirectoryError) as unknown:
        await directory.rename_channel(TEAM, "19:nope@thread.tacv2", "x")
    with pytest.raises(PermanentDirectoryError) as invalid:
        await directory.rename_channel(TEAM, channel_id, "a/b")

    assert type(unknown.value) is PermanentDirectoryError
    assert unknown.value.status == 404
    assert type(invalid.value) is PermanentDirectoryError
    assert invalid.value.status == 400
    assert "ChannelSettings.ReadWrite" not in str(invalid.value)
