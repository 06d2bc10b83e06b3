"""Privacy, idempotency and reachability: regression tests for the first review's findings."""

from __future__ import annotations

from core import audit_actions as A
from core import texts
from core.model import Actor, EngagementState
from tests.e2e.conftest import ALEX, ISAIAH, MARKETING, MEGAN, RunningApp
from tests.e2e.steps import (
    FREELANCER_EMAIL,
    click,
    install_in_team,
    install_personal,
    intake_values,
    say,
    submit_valid_request,
    texts_to,
)
from tests.e2e.test_failure_paths import approve, audit_actions, ready
from tests.support.activities import invoke_action, message, personal_conversation_id
from tests.support.cards import action_data, card_of, card_text, invoke_card, verbs

V_APPROVE = "engagement.approve"
V_REFRESH = "engagement.refresh"
V_SUBMIT = "intake.submit"
V_CONFIRM = "intake.confirm"


async def test_refresh_by_an_outsider_reveals_nothing_about_the_engagement(
    running_app: RunningApp,
) -> None:
    """Regression: any user could read any engagement by sending a refresh with its id."""
    app = running_app
    await ready(app)
    engagement_id = await submit_valid_request(app)
    card = await click(app, ISAIAH, V_REFRESH, {"engagement_id": engagement_id})
    text = card_text(card)
    assert FREELANCER_EMAIL not in text and "Landing pages" not in text
    assert f"can't find FC-{engagement_id}" in text
    async with app.components.storage.transaction() as tx:
        records = await tx.audit.list_for_engagement(engagement_id)
    assert [(r.action, r.actor_id) for r in records if r.outcome.value == "refused"] == [
        (A.VIEW_REFUSED, ISAIAH.aad_id)
    ]
    # The people involved still see it.
    assert FREELANCER_EMAIL in card_text(
        await click(app, ALEX, V_REFRESH, {"engagement_id": engagement_id})
    )


async def test_refused_decision_by_an_outsider_shows_no_facts(running_app: RunningApp) -> None:
    app = running_app
    await ready(app)
    engagement_id = await submit_valid_request(app)
    await app.connector.wait_for_activity(lambda a: V_APPROVE in verbs(card_of(a)), timeout=10)
    card = await click(app, ISAIAH, V_APPROVE, {"engagement_id": engagement_id})
    text = card_text(card)
    assert "Only Megan Bowen can decide" in text
    assert FREELANCER_EMAIL not in text


async def test_redelivered_confirm_makes_one_engagement(running_app: RunningApp) -> None:
    """Regression: Teams re-sends a slow turn with the same id; each copy of the submit made
    an engagement. Submit now shows a preview; its Confirm is what creates, once."""
    app = running_app
    await ready(app)
    preview = await click(app, ALEX, V_SUBMIT, intake_values())
    confirm = action_data(preview, V_CONFIRM)
    activity = invoke_action(
        V_CONFIRM,
        confirm,
        user=ALEX,
        reply_to_id="card-msg-1",
        service_url=app.connector.service_url,
        tenant_id=app.tenant_id,
    )
    first = invoke_card((await app.send(activity))[1])
    second = invoke_card((await app.send(activity))[1])
    # A double click: a new activity id, the same card message.
    third_activity = invoke_action(
        V_CONFIRM,
        confirm,
        user=ALEX,
        reply_to_id="card-msg-1",
        service_url=app.connector.service_url,
        tenant_id=app.tenant_id,
    )
    third = invoke_card((await app.send(third_activity))[1])
    assert card_text(first) == card_text(second) == card_text(third)
    assert "FC-1" in card_text(first)
    mine = await app.components.service.list_mine(Actor(ALEX.aad_id, ALEX.name))
    assert [e.id for e in mine] == [1]


async def test_same_channel_name_twice_in_a_team_is_refused_at_intake(
    running_app: RunningApp,
) -> None:
    """Regression: the second engagement failed after approval with a false message."""
    app = running_app
    await ready(app)
    first = await submit_valid_request(app)
    card = await click(
        app,
        ALEX,
        V_SUBMIT,
        intake_values(channel_name="website REDESIGN", freelancer_name="Kim Lee"),
    )
    assert f"FC-{first} already uses this channel name" in card_text(card)


async def test_requester_who_only_uses_a_channel_gets_notices_in_a_new_personal_chat(
    running_app: RunningApp,
) -> None:
    """Regression: notices to a requester without a personal chat were silently dropped."""
    app = running_app
    await install_personal(app, MEGAN)
    await install_in_team(app, MEGAN)  # Megan adds the bot to the team; Alex never installs
    await say(app, ALEX, "/request", conversation_type="channel", team=MARKETING, mention_bot=True)
    engagement_id = await submit_valid_request(app)
    await approve(app, engagement_id)
    await app.wait_for_state(engagement_id, EngagementState.ACTIVE)
    opened = [c for c in app.connector.conversations if ALEX.user_id in c.member_ids]
    assert len(opened) == 1  # one personal chat, then reused for every notice
    assert not opened[0].is_group
    assert opened[0].tenant_id == app.tenant_id

    # The form asked for in the channel opened the chat; notices follow it there.
    assert "Request a freelancer" in card_text(card_of(opened[0].parameters["activity"]))

    def sent_to_alex() -> str:
        first = card_text(card_of(opened[0].parameters["activity"]))
        later = [card_text(card_of(a)) for a in app.connector.activities(opened[0].id)]
        return " | ".join([first, *later])

    await app.wait_until(lambda: "is ready" in sent_to_alex(), what="ready notice")
    assert "with Megan Bowen" in sent_to_alex()


async def test_repeated_install_events_deliver_a_waiting_approval_card_once(
    running_app: RunningApp,
) -> None:
    """Regression: installationUpdate plus conversationUpdate sent Megan two cards."""
    app = running_app
    await ready(app, approver_installed=False)
    engagement_id = await submit_valid_request(app)
    await app.wait_until(lambda: "isn't installed" in texts_to(app, ALEX))
    for _ in range(3):
        await install_personal(app, MEGAN)
    await say(app, MEGAN, "/help")

    async def recorded() -> object:
        return (await app.engagement(engagement_id)).approval_message

    await app.wait_until(recorded, what="the approval card")
    await app.components.worker.run_until_idle()
    cards = [
        a
        for a in app.connector.activities(personal_conversation_id(MEGAN))
        if V_APPROVE in verbs(card_of(a))
    ]
    assert len(cards) == 1
    assert A.APPROVAL_CARD_UNDELIVERABLE in await audit_actions(app, engagement_id)


async def test_invitation_sent_before_a_crash_is_recorded_as_invited_not_reused(
    running_app: RunningApp,
) -> None:
    """Regression: a guest we invited just before a crash was later called 'reused'."""
    app = running_app
    await ready(app)
    engagement_id = await submit_valid_request(app)
    async with app.components.storage.transaction() as tx:
        engagement = await tx.engagements.get(engagement_id)
        assert engagement is not None
        engagement.guest_invitation_started = True
        await tx.engagements.update(engagement)
        await tx.commit()
    # Graph made the guest; the worker died before recording it.
    guest_id = app.simulator.add_user("Jane Doe", mail=FREELANCER_EMAIL, user_type="Guest")
    await approve(app, engagement_id)
    engagement = await app.wait_for_state(engagement_id, EngagementState.ACTIVE)
    assert engagement.guest_user_id == guest_id
    assert not engagement.guest_reused
    assert app.simulator.invitations == []
    actions = await audit_actions(app, engagement_id)
    assert A.GRAPH_GUEST_INVITED in actions and A.GRAPH_GUEST_REUSED not in actions


async def test_freelancer_email_of_an_employee_fails_with_a_clear_reason(
    running_app: RunningApp,
) -> None:
    """Intake's pre-flight refuses an employee's address (tests/e2e/test_intake.py); an address
    that became an employee's after the request was confirmed still fails set-up clearly."""
    app = running_app
    await ready(app)
    engagement_id = await submit_valid_request(app, freelancer_email="sam@contoso.com")
    app.simulator.add_user("Sam Staff", mail="sam@contoso.com")
    await approve(app, engagement_id)
    engagement = await app.wait_for_state(engagement_id, EngagementState.PROVISIONING_FAILED)
    assert engagement.failure_reason is not None
    assert engagement.failure_reason.startswith(
        texts.FAIL_FREELANCER_IS_MEMBER.format(email="sam@contoso.com")
    )
    assert app.simulator.invitations == []


async def test_welcome_the_connector_refuses_does_not_undo_the_access(
    running_app: RunningApp,
) -> None:
    app = running_app
    await ready(app)
    app.connector.fail_next("POST", r"^/v3/conversations$", 403, code="BotNotInConversationRoster")
    engagement_id = await submit_valid_request(app)
    await approve(app, engagement_id)
    engagement = await app.wait_for_state(engagement_id, EngagementState.ACTIVE)
    assert engagement.welcome_message_id == ""
    async with app.components.storage.transaction() as tx:
        records = await tx.audit.list_for_engagement(engagement_id)
    welcome = [r for r in records if r.action == A.WELCOME_POSTED]
    assert [r.outcome.value for r in welcome] == ["failed"]
    await app.wait_until(lambda: "is ready" in texts_to(app, ALEX))


async def test_activity_from_another_channel_neither_acts_nor_replaces_the_teams_chat(
    running_app: RunningApp,
) -> None:
    app = running_app
    await ready(app)
    activity = message(
        "/status", user=ALEX, service_url=app.connector.service_url, tenant_id=app.tenant_id
    )
    activity["channelId"] = "webchat"
    activity["conversation"]["id"] = "webchat-conversation"
    status, _ = await app.send(activity)
    assert status in (200, 201)
    async with app.components.storage.transaction() as tx:
        stored = await tx.conversations.get_user(ALEX.aad_id)
    assert stored is not None
    assert stored.reference["conversation"]["id"] == personal_conversation_id(ALEX)
