"""The lifecycle through the running app over real HTTP: /revoke with its confirmation card and
offboarding through the Graph simulator; the end reminder's Extend / Let it end / End now
buttons and the approver's extension card; the invitation nudge's Resend button."""

from __future__ import annotations

from datetime import timedelta

from cards import verbs as V
from core import audit_actions as A
from core.model import AuditOutcome, EngagementState
from tests.e2e.conftest import ALEX, ISAIAH, MARKETING, MEGAN, NESTOR, RunningApp
from tests.e2e.steps import (
    FREELANCER_EMAIL,
    click,
    install_in_team,
    install_personal,
    say,
    submit_valid_request,
    texts_to,
)
from tests.support.cards import action_data, card_of, card_text, inputs, verbs


async def active_engagement(app: RunningApp) -> int:
    await install_personal(app, ALEX)
    await install_personal(app, MEGAN)
    await install_personal(app, ISAIAH)
    await install_in_team(app, ALEX)
    engagement_id = await submit_valid_request(app)
    await app.wait_until(
        lambda: any(V.APPROVE in verbs(card_of(a)) for a in app.personal_activities(MEGAN)),
        what="approval card",
    )
    await click(app, MEGAN, V.APPROVE, {V.ENGAGEMENT_ID: engagement_id})
    await app.wait_for_state(engagement_id, EngagementState.ACTIVE)
    return engagement_id


async def audit_of(app: RunningApp, engagement_id: int) -> list[tuple[str, str]]:
    async with app.components.storage.transaction() as tx:
        records = await tx.audit.list_for_engagement(engagement_id)
    return [(r.action, r.outcome.value) for r in records]


async def test_revoke_asks_for_confirmation_then_removes_the_access(
    running_app: RunningApp,
) -> None:
    app = running_app
    engagement_id = await active_engagement(app)
    ref = f"FC-{engagement_id}"
    engagement = await app.engagement(engagement_id)
    guest, channel = engagement.guest_user_id, engagement.channel_id
    assert guest is not None and channel is not None
    team = MARKETING.aad_group_id

    # Someone else: refused, audited, nothing changes.
    refused = await say(app, ISAIAH, f"/revoke {ref} not needed")
    assert "Only the requester" in card_text(refused)
    assert (A.COMMAND_PREFIX + "revoke", AuditOutcome.REFUSED.value) in await audit_of(
        app, engagement_id
    )
    # No reason: the usage, nothing changes.
    usage = await say(app, ALEX, f"/revoke {ref}")
    assert "/revoke FC-12 Contract cancelled" in card_text(usage)

    # The requester: a confirmation card first; "Keep it" changes nothing.
    confirm = await say(app, ALEX, f"/revoke {ref} Contract cancelled")
    assert V.REVOKE_CONFIRM in verbs(confirm) and V.REVOKE_CANCEL in verbs(confirm)
    assert inputs(confirm)[V.REVOKE_REASON]["value"] == "Contract cancelled"
    assert action_data(confirm, V.REVOKE_CONFIRM) == {V.ENGAGEMENT_ID: engagement_id}
    kept = await click(app, ALEX, V.REVOKE_CANCEL, {V.ENGAGEMENT_ID: engagement_id})
    assert "Nothing was changed" in card_text(kept)
    assert (await app.engagement(engagement_id)).state is EngagementState.ACTIVE

    # A tampered confirmation from someone else is refused like the command.
    tampered = await click(
        app,
        ISAIAH,
        V.REVOKE_CONFIRM,
        {V.ENGAGEMENT_ID: engagement_id, V.REVOKE_REASON: "gone"},
    )
    assert "Only the requester" in card_text(tampered)
    assert (await app.engagement(engagement_id)).state is EngagementState.ACTIVE

    ending = await click(
        app,
        ALEX,
        V.REVOKE_CONFIRM,
        {V.ENGAGEMENT_ID: engagement_id, V.REVOKE_REASON: "Contract cancelled"},
    )
    assert f"Ending {ref}" in card_text(ending)
    ended = await app.wait_for_state(engagement_id, EngagementState.ENDED)
    assert ended.end_reason == "Contract cancelled" and ended.ended_by_id == ALEX.aad_id

    sim = app.simulator
    assert guest not in {m.user_id for m in sim.channel_members(team, channel)}
    assert guest not in {m.user_id for m in sim.team_members(team)}
    user = sim.user(guest)
    assert user is not None and not user.account_enabled
    assert ALEX.aad_id in sim.sponsors(guest)

    # The closing note is a new post in the channel; requester and approver are told.
    posts = [
        c
        for c in app.connector.conversations
        if (c.parameters.get("channelData") or {}).get("channel", {}).get("id") == channel
    ]
    assert len(posts) == 2  # the welcome, then the closing note
    assert "has ended" in card_text(card_of(posts[1].parameters["activity"]))
    await app.wait_until(lambda: "has ended" in texts_to(app, ALEX), what="Alex's end notice")
    await app.wait_until(lambda: "has ended" in texts_to(app, MEGAN), what="Megan's end notice")

    actions = await audit_of(app, engagement_id)
    for expected in [
        (A.OFFBOARDING_STARTED, "ok"),
        (A.GRAPH_CHANNEL_MEMBER_REMOVED, "ok"),
        (A.GRAPH_TEAM_MEMBER_REMOVED, "ok"),
        (A.GRAPH_GUEST_DISABLED, "ok"),
        (A.CLOSING_NOTE_POSTED, "ok"),
        (A.OFFBOARDING_COMPLETED, "ok"),
    ]:
        assert expected in actions, (expected, actions)

    # Ended: a second revoke is refused with the state.
    again = await say(app, ALEX, f"/revoke {ref} twice")
    assert "nothing to end" in card_text(again)


async def test_end_reminder_buttons_extend_through_the_approver_and_let_it_end(
    running_app: RunningApp,
) -> None:
    app = running_app
    engagement_id = await active_engagement(app)
    engagement = await app.engagement(engagement_id)
    lifecycle = app.components.handlers.lifecycle

    await lifecycle.send_end_reminder(engagement_id, engagement.end_date.isoformat())
    reminder = await app.wait_until(
        lambda: next(
            (
                card_of(a)
                for a in app.personal_activities(ALEX)
                if V.LET_IT_END in verbs(card_of(a))
            ),
            None,
        ),
        what="reminder card",
    )
    assert {V.EXTEND_REQUEST, V.END_NOW, V.LET_IT_END} <= set(verbs(reminder))
    assert (
        inputs(reminder)[V.NEW_END_DATE]["min"]
        == (engagement.end_date + timedelta(days=1)).isoformat()
    )

    # A date before the current end: the card says why; nothing is stored.
    early = (engagement.end_date - timedelta(days=1)).isoformat()
    invalid = await click(
        app, ALEX, V.EXTEND_REQUEST, {V.ENGAGEMENT_ID: engagement_id, V.NEW_END_DATE: early}
    )
    assert "must be after the current one" in card_text(invalid)
    assert (await app.engagement(engagement_id)).extension_end_date is None
    # Someone else cannot extend.
    other = await click(
        app,
        ISAIAH,
        V.EXTEND_REQUEST,
        {V.ENGAGEMENT_ID: engagement_id, V.NEW_END_DATE: "2031-01-01"},
    )
    assert "Only Alex Wilber" in card_text(other)

    wanted = engagement.end_date + timedelta(days=30)
    asked = await click(
        app,
        ALEX,
        V.EXTEND_REQUEST,
        {V.ENGAGEMENT_ID: engagement_id, V.NEW_END_DATE: wanted.isoformat()},
    )
    assert "I've asked Megan Bowen" in card_text(asked)
    assert V.EXTEND_REQUEST not in verbs(asked)  # no second request while one waits

    extension = await app.wait_until(
        lambda: next(
            (
                card_of(a)
                for a in app.personal_activities(MEGAN)
                if V.EXTENSION_APPROVE in verbs(card_of(a))
            ),
            None,
        ),
        what="extension card",
    )
    assert action_data(extension, V.EXTENSION_APPROVE) == {V.ENGAGEMENT_ID: engagement_id}
    not_theirs = await click(app, ISAIAH, V.EXTENSION_APPROVE, {V.ENGAGEMENT_ID: engagement_id})
    assert "Only Megan Bowen" in card_text(not_theirs)
    assert (await app.engagement(engagement_id)).end_date == engagement.end_date

    approved = await click(app, MEGAN, V.EXTENSION_APPROVE, {V.ENGAGEMENT_ID: engagement_id})
    assert f"now ends on {wanted.isoformat()}" in card_text(approved)
    assert V.EXTENSION_APPROVE not in verbs(approved)
    twice = await click(app, MEGAN, V.EXTENSION_APPROVE, {V.ENGAGEMENT_ID: engagement_id})
    assert "no extension" in card_text(twice).lower()
    extended = await app.engagement(engagement_id)
    assert extended.end_date == wanted and extended.extension_end_date is None
    await app.wait_until(
        lambda: "approved the extension" in texts_to(app, ALEX), what="extended notice"
    )

    # Let it end: recorded, and the reminder for the new date is not sent.
    let_it_end = await click(app, ALEX, V.LET_IT_END, {V.ENGAGEMENT_ID: engagement_id})
    assert "won't remind you again" in card_text(let_it_end)
    assert (await app.engagement(engagement_id)).let_it_end
    before = len(app.personal_activities(ALEX))
    await lifecycle.send_end_reminder(engagement_id, wanted.isoformat())
    assert len(app.personal_activities(ALEX)) == before

    # End now asks for confirmation (the same card as /revoke).
    confirm = await click(app, ALEX, V.END_NOW, {V.ENGAGEMENT_ID: engagement_id})
    assert V.REVOKE_CONFIRM in verbs(confirm)
    assert (await app.engagement(engagement_id)).state is EngagementState.ACTIVE


async def test_nudge_resends_the_invitation_while_it_is_not_accepted(
    running_app: RunningApp,
) -> None:
    app = running_app
    engagement_id = await active_engagement(app)
    lifecycle = app.components.handlers.lifecycle

    await lifecycle.check_invitation(engagement_id)
    nudge = await app.wait_until(
        lambda: next(
            (
                card_of(a)
                for a in app.personal_activities(ALEX)
                if V.RESEND_INVITATION in verbs(card_of(a))
            ),
            None,
        ),
        what="nudge card",
    )
    assert "Jane Doe" in card_text(nudge)
    assert (await app.engagement(engagement_id)).invitation_nudges == 1

    resent = await click(app, ALEX, V.RESEND_INVITATION, {V.ENGAGEMENT_ID: engagement_id})
    assert "new invitation" in card_text(resent)
    await app.wait_until(
        lambda: (
            sum(
                1
                for i in app.simulator.invitations
                if i.invited_user_email_address == FREELANCER_EMAIL
            )
            == 2
        ),
        what="second invitation",
    )
    await app.wait_until(lambda: "new invitation e-mail" in texts_to(app, ALEX), what="notice")

    # Once accepted, checking again nudges no more.
    engagement = await app.engagement(engagement_id)
    assert engagement.guest_user_id is not None
    app.simulator.redeem_invitation(engagement.guest_user_id)
    before = len(app.personal_activities(ALEX))
    await lifecycle.check_invitation(engagement_id)
    assert len(app.personal_activities(ALEX)) == before
    assert (await app.engagement(engagement_id)).invitation_nudges == 1


async def test_offboarding_refused_by_graph_fails_clearly_and_retry_finishes_it(
    running_app: RunningApp,
) -> None:
    app = running_app
    await install_personal(app, NESTOR)  # an admin (ADMIN_IDS in the e2e settings)
    engagement_id = await active_engagement(app)
    ref = f"FC-{engagement_id}"
    # The tenant has not granted User.EnableDisableAccount.All: disabling is refused.
    app.simulator.inject_fault("PATCH", "/users/*", 403, times=1)

    await say(app, ALEX, f"/revoke {ref} Project stopped")
    await click(
        app,
        ALEX,
        V.REVOKE_CONFIRM,
        {V.ENGAGEMENT_ID: engagement_id, V.REVOKE_REASON: "Project stopped"},
    )
    failed = await app.wait_for_state(engagement_id, EngagementState.OFFBOARDING_FAILED)
    assert failed.failure_reason and "User.EnableDisableAccount.All" in failed.failure_reason
    await app.wait_until(
        lambda: f"/retry {ref}" in texts_to(app, NESTOR), what="the admins' failure notice"
    )
    await app.wait_until(lambda: "Removing" in texts_to(app, ALEX), what="requester told")
    guest = failed.guest_user_id
    assert guest is not None
    # The steps before the refused one are done and stay done.
    assert guest not in {m.user_id for m in app.simulator.team_members(MARKETING.aad_group_id)}

    retried = await say(app, NESTOR, f"/retry {ref}")
    assert "queued again" in card_text(retried)
    await app.wait_for_state(engagement_id, EngagementState.ENDED)
    user = app.simulator.user(guest)
    assert user is not None and not user.account_enabled
    assert app.simulator.duplicate_writes() == {}  # the retry redid no finished step
