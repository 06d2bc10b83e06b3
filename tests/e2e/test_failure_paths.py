"""What happens when things go wrong: missing approvers, Graph faults, names taken, crashes
between a Graph change and its record, and tampered card actions."""

from __future__ import annotations

import pytest

from cards import verbs as V
from core import audit_actions as A
from core import texts
from core.model import Engagement, EngagementState
from graph.dev_seed import MEGAN_ID, PAT_GUEST_EMAIL, PAT_GUEST_ID
from tests.e2e.conftest import ALEX, MARKETING, MEGAN, NESTOR, RunningApp
from tests.e2e.steps import (
    click,
    install_in_team,
    install_personal,
    say,
    submit_valid_request,
    texts_to,
)
from tests.support.activities import message
from tests.support.cards import card_of, card_text, inputs, verbs


async def ready(app: RunningApp, *, approver_installed: bool = True) -> None:
    await install_personal(app, ALEX)
    if approver_installed:
        await install_personal(app, MEGAN)
    await install_in_team(app, ALEX)


async def approve(app: RunningApp, engagement_id: int) -> None:
    await app.connector.wait_for_activity(lambda a: V.APPROVE in verbs(card_of(a)), timeout=10)
    card = await click(app, MEGAN, V.APPROVE, {V.ENGAGEMENT_ID: engagement_id})
    assert "Approved by Megan Bowen" in card_text(card)


async def audit_actions(app: RunningApp, engagement_id: int) -> list[str]:
    async with app.components.storage.transaction() as tx:
        return [r.action for r in await tx.audit.list_for_engagement(engagement_id)]


def add_own_channel(app: RunningApp, engagement: Engagement) -> str:
    """The engagement's private channel, made in Graph without the app having recorded it."""
    return app.simulator.add_channel(
        MARKETING.aad_group_id,
        engagement.channel_name,
        membership_type="private",
        description=engagement.channel_description,
        owners=[ALEX.aad_id],
    )


async def test_approver_without_the_app_is_named_and_gets_the_card_once_they_install(
    running_app: RunningApp,
) -> None:
    app = running_app
    await ready(app, approver_installed=False)
    engagement_id = await submit_valid_request(app)
    await app.wait_until(
        lambda: "isn't installed" in texts_to(app, ALEX) and "Megan Bowen" in texts_to(app, ALEX),
        what="the requester being told the approver must install the app",
    )
    assert (await app.engagement(engagement_id)).approval_message is None

    await install_personal(app, MEGAN)
    await app.connector.wait_for_activity(lambda a: V.APPROVE in verbs(card_of(a)), timeout=10)
    await approve(app, engagement_id)
    await app.wait_for_state(engagement_id, EngagementState.ACTIVE)


async def test_requester_without_manager_or_default_approver_is_told_who_to_ask(
    running_app: RunningApp,
) -> None:
    app = running_app
    await install_personal(app, NESTOR)  # Nestor has no manager in the directory
    await install_in_team(app, NESTOR)
    # He adds the bot to the team, so he is a member (intake's pre-flight checks it).
    app.simulator.add_team_member(MARKETING.aad_group_id, NESTOR.aad_id)
    engagement_id = await submit_valid_request(app, requester=NESTOR)
    await app.wait_until(lambda: "DEFAULT_APPROVER" in texts_to(app, NESTOR), what="notice")
    engagement = await app.engagement(engagement_id)
    assert engagement.state is EngagementState.PENDING_APPROVAL
    assert engagement.approver_id is None


@pytest.mark.parametrize("settings_overrides", [{"default_approver": MEGAN_ID}])
async def test_requester_without_manager_goes_to_the_default_approver(
    running_app: RunningApp,
) -> None:
    app = running_app
    await install_personal(app, NESTOR)
    await install_personal(app, MEGAN)
    await install_in_team(app, NESTOR)
    # He adds the bot to the team, so he is a member (intake's pre-flight checks it).
    app.simulator.add_team_member(MARKETING.aad_group_id, NESTOR.aad_id)
    engagement_id = await submit_valid_request(app, requester=NESTOR)
    await approve(app, engagement_id)
    assert (await app.engagement(engagement_id)).approver_id == MEGAN_ID


async def test_throttling_and_outages_are_retried_to_completion_without_duplicates(
    running_app: RunningApp,
) -> None:
    app = running_app
    sim = app.simulator
    sim.inject_fault("POST", "/teams/*/channels", 503, times=2)
    sim.inject_fault("POST", "/invitations", 429, retry_after=1)
    sim.inject_fault("POST", "/teams/*/members", 504)
    await ready(app)
    engagement_id = await submit_valid_request(app)
    await approve(app, engagement_id)
    engagement = await app.wait_for_state(engagement_id, EngagementState.ACTIVE, within_s=20)

    posts = [r for r in sim.requests if r.method == "POST"]
    assert sum(r.path.endswith("/channels") for r in posts) == 3  # two 503s, then created
    invites = [r for r in posts if r.path.endswith("/invitations")]
    assert len(invites) == 2  # one 429, one accepted
    assert len(sim.invitations) == 1
    assert [c.display_name for c in sim.channels(MARKETING.aad_group_id)].count(
        engagement.channel_name
    ) == 1
    members = [m.user_id for m in sim.team_members(MARKETING.aad_group_id)]
    assert members.count(engagement.guest_user_id) == 1


async def test_retry_after_is_honoured_before_the_next_attempt(running_app: RunningApp) -> None:
    app = running_app
    sim = app.simulator
    sim.inject_fault("POST", "/invitations", 429, retry_after=2)
    await ready(app)
    engagement_id = await submit_valid_request(app)
    await approve(app, engagement_id)
    await app.wait_for_state(engagement_id, EngagementState.ACTIVE, within_s=20)
    invite_times = _request_times(app, "/invitations")
    assert len(invite_times) == 2
    assert invite_times[1] - invite_times[0] >= 2.0


async def test_fresh_guest_not_yet_replicated_is_retried_until_teams_sees_it(
    running_app: RunningApp,
) -> None:
    app = running_app
    app.simulator.replication_delay_s = 0.6
    await ready(app)
    engagement_id = await submit_valid_request(app)
    await approve(app, engagement_id)
    await app.wait_for_state(engagement_id, EngagementState.ACTIVE, within_s=20)
    member_posts = [
        r
        for r in app.simulator.requests
        if r.method == "POST" and r.path.endswith(f"/teams/{MARKETING.aad_group_id}/members")
    ]
    assert len(member_posts) >= 2  # at least one 404 before the guest was visible


async def test_permission_refusal_ends_in_provisioning_failed_with_the_permission_named(
    running_app: RunningApp,
) -> None:
    app = running_app
    app.simulator.guest_team_add_forbidden = True
    await ready(app)
    engagement_id = await submit_valid_request(app)
    await approve(app, engagement_id)
    engagement = await app.wait_for_state(engagement_id, EngagementState.PROVISIONING_FAILED)
    assert engagement.failure_reason is not None
    assert "TeamMember.ReadWriteNonOwnerRole.All" in engagement.failure_reason
    # What was made before the failure is recorded, so an admin can see and resume it.
    assert engagement.channel_id is not None and engagement.guest_user_id is not None
    await app.wait_until(
        lambda: (
            "Setting up FC-" in texts_to(app, ALEX)
            and "TeamMember.ReadWriteNonOwnerRole.All" in texts_to(app, ALEX)
        ),
        what="the requester's failure notice",
    )
    assert A.PROVISIONING_FAILED in await audit_actions(app, engagement_id)


async def test_channel_made_before_a_crash_is_found_and_recorded_not_made_twice(
    running_app: RunningApp,
) -> None:
    app = running_app
    await ready(app)
    engagement_id = await submit_valid_request(app)
    engagement = await app.engagement(engagement_id)
    # As if a worker created the channel and died before recording it.
    channel_id = add_own_channel(app, engagement)
    await approve(app, engagement_id)
    engagement = await app.wait_for_state(engagement_id, EngagementState.ACTIVE)
    assert engagement.channel_id == channel_id
    names = [c.display_name for c in app.simulator.channels(MARKETING.aad_group_id)]
    assert names.count(engagement.channel_name) == 1
    assert A.GRAPH_CHANNEL_ADOPTED in await audit_actions(app, engagement_id)


class FirstChannelLookupMisses:
    """The app's real Graph directory, except that the first channel lookup answers "none",
    as a lookup does that runs just before Graph applies an earlier, timed-out create."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self.missed = False

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def find_channel(self, team_id: str, name: str) -> object:
        if not self.missed:
            self.missed = True
            return None
        return await self._inner.find_channel(team_id, name)  # type: ignore[attr-defined]


async def test_own_channel_applied_late_is_adopted_when_graph_says_the_name_is_taken(
    running_app: RunningApp,
) -> None:
    # Regression: "name taken" was final, so an engagement whose own create landed late
    # failed for good instead of adopting the channel made for it.
    app = running_app
    await ready(app)
    engagement_id = await submit_valid_request(app)
    engagement = await app.engagement(engagement_id)
    channel_id = add_own_channel(app, engagement)
    directory = FirstChannelLookupMisses(app.components.handlers._directory)
    app.components.handlers._directory = directory  # type: ignore[assignment]
    await approve(app, engagement_id)
    engagement = await app.wait_for_state(engagement_id, EngagementState.ACTIVE)
    assert directory.missed
    assert engagement.channel_id == channel_id
    names = [c.display_name for c in app.simulator.channels(MARKETING.aad_group_id)]
    assert names.count(engagement.channel_name) == 1
    assert A.GRAPH_CHANNEL_ADOPTED in await audit_actions(app, engagement_id)


async def test_channel_name_taken_by_someone_else_fails_with_a_clear_reason(
    running_app: RunningApp,
) -> None:
    """Intake's pre-flight refuses a taken name; one taken after the request was confirmed
    (before approval) still fails set-up with a reason an admin can act on."""
    app = running_app
    await ready(app)
    engagement_id = await submit_valid_request(app)
    app.simulator.add_channel(MARKETING.aad_group_id, "Website redesign")
    await approve(app, engagement_id)
    engagement = await app.wait_for_state(engagement_id, EngagementState.PROVISIONING_FAILED)
    assert engagement.failure_reason == texts.FAIL_CHANNEL_NAME_TAKEN.format(
        channel="Website redesign", team=MARKETING.name
    )
    assert engagement.guest_user_id is None  # nothing more was done
    assert app.simulator.invitations == []


async def test_existing_guest_is_reused_instead_of_invited_again(running_app: RunningApp) -> None:
    app = running_app
    await ready(app)
    engagement_id = await submit_valid_request(
        app, freelancer_email=PAT_GUEST_EMAIL, freelancer_name="Pat Freelance"
    )
    await approve(app, engagement_id)
    engagement = await app.wait_for_state(engagement_id, EngagementState.ACTIVE)
    assert engagement.guest_user_id == PAT_GUEST_ID
    assert engagement.guest_reused
    assert app.simulator.invitations == []
    await app.wait_until(lambda: "already had a guest account" in texts_to(app, ALEX))


async def test_request_in_a_channel_strips_the_mention_and_preselects_that_team(
    running_app: RunningApp,
) -> None:
    app = running_app
    await ready(app)
    for text in ("/request", "new request"):
        reply = await say(
            app, ALEX, text, conversation_type="channel", team=MARKETING, mention_bot=True
        )
        # The form itself goes to the 1:1 chat (tests/e2e/test_intake.py).
        assert card_text(reply) == texts.FORM_SENT_TO_CHAT
        form = card_of(app.personal_activities(ALEX)[-1])
        assert form is not None
        assert inputs(form)["team_id"].get("value") == MARKETING.aad_group_id


async def test_unknown_command_points_to_help(running_app: RunningApp) -> None:
    app = running_app
    await ready(app)
    card = await say(app, ALEX, "/frobnicate now")
    assert "/help" in card_text(card)
    help_card = await say(app, ALEX, "/help")
    assert "/request" in card_text(help_card) and "/pending" not in card_text(help_card)
    admin_help = await say(app, NESTOR, "/help")
    assert "/pending" in card_text(admin_help)


@pytest.mark.parametrize(
    ("verb", "data"),
    [
        ("engagement.nuke", {V.ENGAGEMENT_ID: 1}),
        (V.APPROVE, {V.ENGAGEMENT_ID: "1; DROP TABLE engagements"}),
        (V.APPROVE, {V.ENGAGEMENT_ID: 999_999}),
        (V.APPROVE, {V.ENGAGEMENT_ID: True}),
        (V.APPROVE, {}),
        (V.REJECT, {V.ENGAGEMENT_ID: -1, V.REJECT_REASON: "x"}),
        (V.INTAKE_SUBMIT, {"project_title": ["not", "text"]}),
    ],
)
async def test_tampered_card_actions_get_a_card_and_change_nothing(
    running_app: RunningApp, verb: str, data: dict[str, object]
) -> None:
    app = running_app
    await ready(app)
    engagement_id = await submit_valid_request(app)

    async def routed() -> object:
        return (await app.engagement(engagement_id)).approval_message

    await app.wait_until(routed, what="the approval card being recorded")
    before = await app.engagement(engagement_id)
    card = await click(app, MEGAN, verb, data)
    assert card_text(card)
    after = await app.engagement(engagement_id)
    assert after.state is EngagementState.PENDING_APPROVAL
    assert after.version == before.version


async def test_message_without_an_entra_identity_is_answered_not_crashed(
    running_app: RunningApp,
) -> None:
    app = running_app
    activity = message(
        "/status", user=ALEX, service_url=app.connector.service_url, tenant_id=app.tenant_id
    )
    del activity["from"]["aadObjectId"]
    status, _ = await app.send(activity)
    assert status in (200, 201)
    reply = await app.connector.wait_for_activity(lambda a: bool(card_text(card_of(a))))
    assert card_text(card_of(reply))


def _request_times(app: RunningApp, path_suffix: str) -> list[float]:
    return [
        r.time
        for r in app.simulator.requests
        if r.method == "POST" and r.path.endswith(path_suffix)
    ]
