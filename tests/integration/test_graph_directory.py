"""GraphDirectory over real msgraph-sdk HTTP calls against the Graph simulator."""

from __future__ import annotations

import socket
import time

import pytest

from core.errors import (
    ChannelNameTaken,
    DirectoryError,
    NotYetReplicated,
    PermanentDirectoryError,
    Throttled,
    TransientDirectoryError,
)
from core.ports import ChannelInfo, Directory, DirectoryUser
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
from graph.directory import GraphDirectory
from graph.simulator import GraphSimulator
from tests.integration.conftest import GRAPH_TOKEN
from tests.support.clock import ManualClock

# msgraph's generated request builders warn about their own deprecated classes on import.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:msgraph")

GUEST_EMAIL = "sam@fabrikam.example"


async def invite_sam(directory: GraphDirectory) -> str:
    invitation = await directory.invite_guest(
        email=GUEST_EMAIL,
        display_name="Sam Contractor",
        redirect_url="https://teams.microsoft.com",
    )
    return invitation.invited_user_id


async def make_channel(directory: GraphDirectory, name: str = "FC-7 Sam") -> ChannelInfo:
    return await directory.create_private_channel(
        MARKETING_TEAM_ID, display_name=name, description="Sam's work", owner_id=ALEX_ID
    )


def test_graph_directory_satisfies_the_directory_port(directory: GraphDirectory) -> None:
    port: Directory = directory
    assert port is directory


# --- happy paths -------------------------------------------------------------------------


async def test_get_user_returns_member_and_none_when_missing(directory: GraphDirectory) -> None:
    alex = await directory.get_user(ALEX_ID)
    pat = await directory.get_user(PAT_GUEST_ID)
    missing = await directory.get_user("aaaaaaaa-0000-0000-0000-00000000ffff")

    assert alex == DirectoryUser(ALEX_ID, "Alex Wilber", "alex@contoso.com", "Member")
    assert pat is not None and pat.user_type == "Guest"
    assert missing is None


async def test_get_manager_returns_manager_and_none_without_one(
    directory: GraphDirectory,
) -> None:
    manager = await directory.get_manager(ALEX_ID)
    top = await directory.get_manager(NESTOR_ID)

    assert manager == DirectoryUser(MEGAN_ID, "Megan Bowen", "megan@contoso.com", "Member")
    assert top is None


async def test_find_user_by_email_matches_mail_case_insensitively(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    found = await directory.find_user_by_email("PAT@Fabrikam.com")

    assert found is not None and found.id == PAT_GUEST_ID
    assert [r.query["$filter"] for r in sim.requests] == ["mail eq 'PAT@Fabrikam.com'"]


async def test_find_user_by_email_finds_invited_guest_via_other_mails(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    sim.invited_guest_mail = False
    guest_id = await invite_sam(directory)
    sim.requests.clear()

    found = await directory.find_user_by_email(GUEST_EMAIL)

    assert found == DirectoryUser(guest_id, "Sam Contractor", None, "Guest")
    assert [r.query["$filter"] for r in sim.requests] == [
        f"mail eq '{GUEST_EMAIL}'",
        f"otherMails/any(x:x eq '{GUEST_EMAIL}')",
    ]


async def test_find_user_by_email_escapes_quotes_and_returns_none_when_absent(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    obrien = sim.add_user("Pat O'Brien", mail="o'brien+x@contoso.com")

    found = await directory.find_user_by_email("o'brien+x@contoso.com")
    absent = await directory.find_user_by_email("nobody@nowhere.example")

    assert found is not None and found.id == obrien
    assert absent is None


async def test_invite_guest_returns_invitation_and_reinvite_returns_same_user(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    first = await directory.invite_guest(
        email=GUEST_EMAIL,
        display_name="Sam Contractor",
        redirect_url="https://teams.microsoft.com",
    )
    again = await directory.invite_guest(
        email=GUEST_EMAIL,
        display_name="Sam Contractor",
        redirect_url="https://teams.microsoft.com",
    )

    assert first.status == "PendingAcceptance"
    assert first.redeem_url and first.redeem_url.startswith("https://login.microsoftonline.com/")
    assert again.invited_user_id == first.invited_user_id
    sent = sim.requests[0].json
    assert sent == {
        "invitedUserDisplayName": "Sam Contractor",
        "invitedUserEmailAddress": GUEST_EMAIL,
        "inviteRedirectUrl": "https://teams.microsoft.com",
        "sendInvitationMessage": True,
    }


async def test_create_private_channel_then_find_it_case_insensitively(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    before = await directory.find_channel(MARKETING_TEAM_ID, "FC-7 Sam")

    created = await make_channel(directory)
    found = await directory.find_channel(MARKETING_TEAM_ID, "fc-7 SAM")

    assert before is None
    assert created.id.startswith("19:") and created.id.endswith("@thread.tacv2")
    assert created == ChannelInfo(created.id, "FC-7 Sam", "Sam's work", "private")
    assert found == created
    [owner] = sim.channel_members(MARKETING_TEAM_ID, created.id)
    assert (owner.user_id, owner.roles) == (ALEX_ID, ["owner"])
    post = next(r for r in sim.requests if r.method == "POST")
    assert post.json["members"] == [
        {
            "@odata.type": "#microsoft.graph.aadUserConversationMember",
            # Bound on the endpoint the client talks to (national clouds have their own host).
            "user@odata.bind": f"{sim.base_url}/users('{ALEX_ID}')",
            "roles": ["owner"],
        }
    ]
    assert post.headers["Prefer"] == "include-unknown-enum-members"


async def test_find_channel_with_a_quote_in_the_name(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    # Graph refuses quotes in new names, but older channels may carry them.
    channel_id = sim.add_channel(ENGINEERING_TEAM_ID, "Lee's corner", description="x")

    found = await directory.find_channel(ENGINEERING_TEAM_ID, "Lee's corner")

    assert found == ChannelInfo(channel_id, "Lee's corner", "x", "standard")


async def test_team_and_channel_membership_lifecycle_for_a_guest(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    channel = await make_channel(directory)
    guest = await invite_sam(directory)

    assert await directory.find_team_member(MARKETING_TEAM_ID, guest) is None
    team_membership = await directory.add_team_member(MARKETING_TEAM_ID, guest)
    assert await directory.find_team_member(MARKETING_TEAM_ID, guest) == team_membership

    assert await directory.find_channel_member(MARKETING_TEAM_ID, channel.id, guest) is None
    channel_membership = await directory.add_channel_member(MARKETING_TEAM_ID, channel.id, guest)
    assert (
        await directory.find_channel_member(MARKETING_TEAM_ID, channel.id, guest)
        == channel_membership
    )

    assert team_membership != channel_membership
    assert {m.user_id: m.roles for m in sim.team_members(MARKETING_TEAM_ID)}[guest] == ["guest"]
    channel_members = {m.user_id for m in sim.channel_members(MARKETING_TEAM_ID, channel.id)}
    assert channel_members == {ALEX_ID, guest}
    team_post = next(
        r
        for r in sim.requests
        if r.method == "POST" and r.path.endswith(f"{MARKETING_TEAM_ID}/members")
    )
    assert team_post.json["roles"] == []


async def test_find_team_member_returns_existing_membership_id(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    expected = {m.user_id: m.id for m in sim.team_members(MARKETING_TEAM_ID)}[ISAIAH_ID]

    assert await directory.find_team_member(MARKETING_TEAM_ID, ISAIAH_ID) == expected
    assert await directory.find_team_member(MARKETING_TEAM_ID, LEE_ID) is None


# --- failures ----------------------------------------------------------------------------


async def test_duplicate_channel_name_raises_channel_name_taken(
    directory: GraphDirectory,
) -> None:
    await make_channel(directory)

    with pytest.raises(ChannelNameTaken) as raised:
        await make_channel(directory, "fc-7 sam")

    assert raised.value.status == 400
    assert raised.value.code == "NameAlreadyExists"


async def test_429_is_throttled_with_retry_after_after_exactly_one_request(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    sim.inject_fault("POST", "/teams/*/members", 429, times=3, retry_after=2)
    started = time.monotonic()

    with pytest.raises(Throttled) as raised:
        await directory.add_team_member(MARKETING_TEAM_ID, LEE_ID)

    assert raised.value.retry_after == 2
    assert raised.value.status == 429
    # Kiota's retry handler would have slept 2 s and sent it again.
    assert len(sim.requests) == 1
    assert time.monotonic() - started < 1.5


async def test_503_is_transient_after_exactly_one_request(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    sim.inject_fault("GET", "/users/*", 503, times=3)

    with pytest.raises(TransientDirectoryError) as raised:
        await directory.get_user(ALEX_ID)

    assert not isinstance(raised.value, Throttled | NotYetReplicated)
    assert raised.value.status == 503
    assert len(sim.requests) == 1


async def test_504_on_channel_create_is_transient(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    sim.inject_fault("POST", "/teams/*/channels", 504)

    with pytest.raises(TransientDirectoryError):
        await make_channel(directory)

    assert sim.channels(MARKETING_TEAM_ID)[-1].display_name == "General"


async def test_fresh_guest_is_not_yet_replicated_then_added_after_the_delay(
    sim: GraphSimulator, directory: GraphDirectory, clock: ManualClock
) -> None:
    sim.replication_delay_s = 60
    guest = await invite_sam(directory)
    channel = await make_channel(directory)

    with pytest.raises(NotYetReplicated) as raised:
        await directory.add_team_member(MARKETING_TEAM_ID, guest)
    clock.advance(61)
    membership = await directory.add_team_member(MARKETING_TEAM_ID, guest)

    assert raised.value.status == 404
    assert membership
    sim.replication_delay_s = 10_000
    with pytest.raises(NotYetReplicated):
        await directory.add_channel_member(MARKETING_TEAM_ID, channel.id, guest)


async def test_guest_team_add_forbidden_is_permanent_and_names_the_permission(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    sim.guest_team_add_forbidden = True

    with pytest.raises(PermanentDirectoryError) as raised:
        await directory.add_team_member(MARKETING_TEAM_ID, PAT_GUEST_ID)

    message = str(raised.value)
    assert raised.value.status == 403
    assert "add the guest to the team" in message
    assert "403 Forbidden: An unknown error has occurred." in message
    assert "TeamMember.ReadWriteNonOwnerRole.All" in message


async def test_403_on_invitation_names_user_invite_all(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    sim.inject_fault(
        "POST",
        "/invitations",
        403,
        code="Authorization_RequestDenied",
        message="Insufficient privileges to complete the operation.",
    )

    with pytest.raises(PermanentDirectoryError) as raised:
        await invite_sam(directory)

    assert "User.Invite.All" in str(raised.value)
    assert raised.value.code == "Authorization_RequestDenied"


async def test_owner_outside_the_team_is_a_permanent_error_with_graphs_message(
    directory: GraphDirectory,
) -> None:
    with pytest.raises(PermanentDirectoryError) as raised:
        await directory.create_private_channel(
            MARKETING_TEAM_ID, display_name="FC-8", description="d", owner_id=NESTOR_ID
        )

    assert not isinstance(raised.value, ChannelNameTaken)
    assert "is not part of team" in str(raised.value)


async def test_unknown_team_is_permanent_not_none(directory: GraphDirectory) -> None:
    with pytest.raises(PermanentDirectoryError) as raised:
        await directory.find_channel("bbbbbbbb-0000-0000-0000-00000000ffff", "x")

    assert raised.value.status == 404


async def test_unreachable_graph_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = build_graph_client(
        GraphSettings(base_url=f"http://127.0.0.1:{port}/v1.0", static_token=GRAPH_TOKEN)
    )
    try:
        with pytest.raises(TransientDirectoryError) as raised:
            await GraphDirectory(client).get_user(ALEX_ID)
    finally:
        await close_graph_client(client)

    assert "Could not reach Microsoft Graph" in str(raised.value)


async def test_token_reaches_graph_but_never_appears_in_errors(
    sim: GraphSimulator, directory: GraphDirectory
) -> None:
    errors: list[DirectoryError] = []
    sim.inject_fault("GET", "/users/*", 429, retry_after=1)
    sim.inject_fault("GET", "/users/*/manager", 500)
    sim.guest_team_add_forbidden = True
    attempts = [
        directory.get_user(ALEX_ID),
        directory.get_manager(ALEX_ID),
        directory.add_team_member(MARKETING_TEAM_ID, PAT_GUEST_ID),
        make_channel(directory, "bad/name"),
    ]
    for attempt in attempts:
        try:
            await attempt
        except DirectoryError as error:
            errors.append(error)

    assert sim.base_url is not None
    intruder = build_graph_client(
        GraphSettings(base_url=sim.base_url, static_token="wrong-secret-token")
    )
    try:
        with pytest.raises(PermanentDirectoryError) as unauthorised:
            await GraphDirectory(intruder).get_user(ALEX_ID)
    finally:
        await close_graph_client(intruder)
    errors.append(unauthorised.value)

    assert set(sim.tokens_seen) == {GRAPH_TOKEN, "wrong-secret-token"}
    assert unauthorised.value.status == 401
    assert "User.Read.All" in str(unauthorised.value)
    assert len(errors) == 5
    for failure in errors:
        shown = f"{failure} {failure.message} {failure!r} {failure.__cause__!r}"
        assert GRAPH_TOKEN not in shown
        assert "wrong-secret-token" not in shown
