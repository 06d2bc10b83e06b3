"""Approvals end to end (issue 4), over HTTP with the Graph simulator and the Bot Connector
stand-in: every card sent about a request is updated when its state changes, request changes
and resubmit, cancel, reassign, no self-approval, a second stage by a review group, the
timers (reminder, escalation, expiry) on an injectable clock, and automatic refreshes that
never decide."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from app import COMPONENTS, build_app
from cards import verbs as V
from core import audit_actions as A
from core import texts
from core.model import CardKind, EngagementState
from graph.dev_seed import ISAIAH_ID, LEE_ID
from tests.e2e.conftest import ALEX, ISAIAH, MARKETING, MEGAN, NESTOR, RunningApp, e2e_settings
from tests.e2e.steps import (
    click,
    install_personal,
    intake_values,
    say,
    submit_valid_request,
    texts_to,
)
from tests.e2e.test_failure_paths import ready
from tests.support.activities import TestUser, invoke_action
from tests.support.cards import action_data, card_of, card_text, inputs, invoke_card, verbs
from tests.support.clock import ShiftedClock
from tests.support.connector import ConnectorStandIn

LEE = TestUser(aad_id=LEE_ID, user_id="29:lee", name="Lee Gu")
REVIEW_GROUP = "cccccccc-0000-0000-0000-0000000000aa"


async def request_with_status_card(app: RunningApp, **overrides: str) -> int:
    """Submit and Confirm from a form message with an id, as Teams sends it (the confirmation
    card replaces the form in that message, which is then kept up to date)."""
    preview = await click(app, ALEX, V.INTAKE_SUBMIT, intake_values(**overrides))
    status, body = await app.send(
        invoke_action(
            V.INTAKE_CONFIRM,
            action_data(preview, V.INTAKE_CONFIRM),
            user=ALEX,
            reply_to_id="form-message-1",
            service_url=app.connector.service_url,
            tenant_id=app.tenant_id,
        )
    )
    assert status == 200, body
    card = invoke_card(body)
    assert V.CANCEL_REQUEST in verbs(card), card_text(card)
    return int(card_text(card).split("FC-")[1].split()[0])


async def approval_card_for(app: RunningApp, user: TestUser, engagement_id: int) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        for activity in reversed(app.personal_activities(user)):
            card = card_of(activity)
            if card and V.APPROVE in verbs(card):
                if action_data(card, V.APPROVE).get(V.ENGAGEMENT_ID) == engagement_id:
                    return card
        return None

    await app.wait_until(lambda: found() is not None, what=f"approval card to {user.name}")
    card = found()
    assert card is not None
    return card


async def settled(app: RunningApp) -> None:
    await app.components.worker.run_until_idle()


async def test_every_card_is_updated_when_the_request_is_decided(running_app: RunningApp) -> None:
    app = running_app
    await ready(app)
    engagement_id = await request_with_status_card(app)
    await approval_card_for(app, MEGAN, engagement_id)

    card = await click(app, MEGAN, V.APPROVE, {V.ENGAGEMENT_ID: engagement_id})
    assert "Approved by Megan Bowen" in card_text(card)
    async with app.components.storage.transaction() as tx:
        sent = await tx.cards.list_for_engagement(engagement_id)
    assert {c.kind for c in sent} == {CardKind.APPROVAL, CardKind.STATUS}

    def latest() -> dict[str, dict[str, Any]]:
        """Each sent card as its last update left it."""
        shown: dict[str, dict[str, Any]] = {}
        for call in app.connector.updates():
            card = card_of(call.json)
            if card is not None:
                shown[call.match["activity_id"]] = card
        return shown

    def all_decided() -> bool:
        shown = latest()
        return all(
            c.ref.activity_id in shown
            and "Megan Bowen" in card_text(shown[c.ref.activity_id])
            and V.APPROVE not in verbs(shown[c.ref.activity_id])
            and V.CANCEL_REQUEST not in verbs(shown[c.ref.activity_id])
            for c in sent
        )

    await app.wait_until(all_decided, what="every sent card updated after the decision")
    # No stale buttons: nobody's card still offers a decision or Cancel.
    for card in latest().values():
        assert not {V.APPROVE, V.REJECT, V.CANCEL_REQUEST} & set(verbs(card)), card_text(card)


async def test_request_changes_sends_the_form_back_and_the_resubmission_keeps_history(
    running_app: RunningApp,
) -> None:
    app = running_app
    await ready(app)
    engagement_id = await submit_valid_request(app)
    await approval_card_for(app, MEGAN, engagement_id)

    empty = await click(app, MEGAN, V.REQUEST_CHANGES, {V.ENGAGEMENT_ID: engagement_id})
    assert texts.CHANGES_COMMENT_REQUIRED in card_text(empty)
    await click(
        app,
        MEGAN,
        V.REQUEST_CHANGES,
        {V.ENGAGEMENT_ID: engagement_id, V.REJECT_REASON: "Two months at most"},
    )
    engagement = await app.engagement(engagement_id)
    assert engagement.state is EngagementState.CHANGES_REQUESTED

    def changes_form() -> dict[str, Any] | None:
        for activity in reversed(app.personal_activities(ALEX)):
            card = card_of(activity)
            if card and V.RESUBMIT in verbs(card):
                return card
        return None

    await app.wait_until(lambda: changes_form() is not None, what="the form sent back")
    form = changes_form()
    assert form is not None
    assert "Two months at most" in card_text(form)
    values = {name: str(node.get("value", "")) for name, node in inputs(form).items()}
    assert values["project_title"] == "Website redesign"

    values["project_title"] = "Website redesign, phase 1"
    card = await click(app, ALEX, V.RESUBMIT, {**values, V.ENGAGEMENT_ID: engagement_id})
    assert "back with Megan Bowen" in card_text(card)
    engagement = await app.engagement(engagement_id)
    assert engagement.state is EngagementState.PENDING_APPROVAL
    assert (engagement.revision, engagement.project_title) == (2, "Website redesign, phase 1")
    revisions = await app.components.approvals.revisions(engagement_id)
    assert [(r.number, r.comment, r.values["project_title"]) for r in revisions] == [
        (1, "Two months at most", "Website redesign")
    ]
    # Megan decides the changed request.
    await settled(app)
    card = await click(app, MEGAN, V.APPROVE, {V.ENGAGEMENT_ID: engagement_id})
    assert "Approved by Megan Bowen" in card_text(card)


async def test_the_requester_cancels_and_the_approver_is_told(running_app: RunningApp) -> None:
    app = running_app
    await ready(app)
    engagement_id = await request_with_status_card(app)
    await approval_card_for(app, MEGAN, engagement_id)

    refused = await click(app, MEGAN, V.CANCEL_REQUEST, {V.ENGAGEMENT_ID: engagement_id})
    assert texts.CANCEL_NOT_YOURS.format(ref=f"FC-{engagement_id}") in card_text(refused)
    card = await click(app, ALEX, V.CANCEL_REQUEST, {V.ENGAGEMENT_ID: engagement_id})
    assert V.CANCEL_REQUEST not in verbs(card)
    assert (await app.engagement(engagement_id)).state is EngagementState.CANCELLED
    await app.wait_until(lambda: "cancelled" in texts_to(app, MEGAN), what="Megan told")
    late = await click(app, MEGAN, V.APPROVE, {V.ENGAGEMENT_ID: engagement_id})
    assert "Already cancelled by Alex Wilber" in card_text(late)


async def test_the_approver_reassigns_to_a_colleague_who_then_decides(
    running_app: RunningApp,
) -> None:
    app = running_app
    await ready(app)
    await install_personal(app, ISAIAH)
    engagement_id = await submit_valid_request(app)
    await approval_card_for(app, MEGAN, engagement_id)

    unknown = await click(
        app,
        MEGAN,
        V.DELEGATE,
        {V.ENGAGEMENT_ID: engagement_id, V.DELEGATE_TO: "nobody@contoso.com"},
    )
    assert texts.DELEGATE_UNKNOWN.format(who="nobody@contoso.com") in card_text(unknown)
    card = await click(
        app,
        MEGAN,
        V.DELEGATE,
        {V.ENGAGEMENT_ID: engagement_id, V.DELEGATE_TO: "isaiah@contoso.com"},
    )
    assert texts.DELEGATED_TO.format(name="Isaiah Langer") in card_text(card)
    await approval_card_for(app, ISAIAH, engagement_id)
    late = await click(app, MEGAN, V.APPROVE, {V.ENGAGEMENT_ID: engagement_id})
    assert "Only Isaiah Langer can decide" in card_text(late)
    card = await click(app, ISAIAH, V.APPROVE, {V.ENGAGEMENT_ID: engagement_id})
    assert "Approved by Isaiah Langer" in card_text(card)
    async with app.components.storage.transaction() as tx:
        actions = [r.action for r in await tx.audit.list_for_engagement(engagement_id)]
    assert A.APPROVAL_DELEGATED in actions


async def test_a_requester_who_is_the_default_approver_is_not_their_own_approver(
    running_app: RunningApp,
) -> None:
    app = running_app
    await ready(app)
    await install_personal(app, NESTOR)
    app.simulator.add_team_member(MARKETING.aad_group_id, NESTOR.aad_id)
    # Nestor has no manager and is the default approver: nobody may approve his request.
    await say(app, NESTOR, "/policy set default_approver nestor@contoso.com")
    engagement_id = await submit_valid_request(app, NESTOR)
    await app.wait_until(lambda: "DEFAULT_APPROVER" in texts_to(app, NESTOR), what="notice")
    engagement = await app.engagement(engagement_id)
    assert engagement.approver_id is None
    own = await click(app, NESTOR, V.APPROVE, {V.ENGAGEMENT_ID: engagement_id})
    assert texts.NO_SELF_APPROVAL.format(ref=f"FC-{engagement_id}") in card_text(own)


async def test_a_confidential_request_needs_the_review_group_as_a_second_stage(
    running_app: RunningApp,
) -> None:
    app = running_app
    await ready(app)
    await install_personal(app, ISAIAH)
    await install_personal(app, LEE)
    app.simulator.add_group(REVIEW_GROUP, "Security review", [ISAIAH_ID, LEE_ID])
    await say(app, NESTOR, f"/policy set second_stage_group {REVIEW_GROUP}")
    engagement_id = await submit_valid_request(app, data_classification="confidential")
    assert (await app.engagement(engagement_id)).stages == 2
    await approval_card_for(app, MEGAN, engagement_id)

    card = await click(app, MEGAN, V.APPROVE, {V.ENGAGEMENT_ID: engagement_id})
    assert (await app.engagement(engagement_id)).approval_stage == 2
    assert V.APPROVE not in verbs(card)
    await approval_card_for(app, ISAIAH, engagement_id)
    await approval_card_for(app, LEE, engagement_id)
    await settled(app)

    first = await click(app, LEE, V.APPROVE, {V.ENGAGEMENT_ID: engagement_id})
    assert "Approved by Lee Gu" in card_text(first)
    second = await click(app, ISAIAH, V.APPROVE, {V.ENGAGEMENT_ID: engagement_id})
    assert "Already approved by Lee Gu" in card_text(second)
    await app.wait_for_state(engagement_id, EngagementState.ACTIVE)


async def test_a_review_group_member_who_installs_later_gets_the_second_stage_card(
    running_app: RunningApp,
) -> None:
    """Regression: only the first-stage approver's install re-routed a waiting request, so a
    review-group member without the app when stage 2 began never got its card."""
    app = running_app
    await ready(app)
    await install_personal(app, ISAIAH)
    app.simulator.add_group(REVIEW_GROUP, "Security review", [ISAIAH_ID, LEE_ID])
    await say(app, NESTOR, f"/policy set second_stage_group {REVIEW_GROUP}")
    engagement_id = await submit_valid_request(app, data_classification="confidential")
    await approval_card_for(app, MEGAN, engagement_id)
    await click(app, MEGAN, V.APPROVE, {V.ENGAGEMENT_ID: engagement_id})
    await approval_card_for(app, ISAIAH, engagement_id)
    await settled(app)
    assert not [a for a in app.personal_activities(LEE) if V.APPROVE in verbs(card_of(a))]

    await install_personal(app, LEE)

    await approval_card_for(app, LEE, engagement_id)
    await settled(app)
    # Isaiah, who had it, did not get it again.
    isaiah_cards = [a for a in app.personal_activities(ISAIAH) if V.APPROVE in verbs(card_of(a))]
    assert len(isaiah_cards) == 1
    card = await click(app, LEE, V.APPROVE, {V.ENGAGEMENT_ID: engagement_id})
    assert "Approved by Lee Gu" in card_text(card)


async def test_an_automatic_refresh_never_decides(running_app: RunningApp) -> None:
    app = running_app
    await ready(app)
    engagement_id = await submit_valid_request(app)
    await approval_card_for(app, MEGAN, engagement_id)
    status, body = await app.send(
        invoke_action(
            V.APPROVE,
            {V.ENGAGEMENT_ID: engagement_id},
            user=MEGAN,
            trigger="automatic",
            service_url=app.connector.service_url,
            tenant_id=app.tenant_id,
        )
    )
    assert status == 200
    assert V.APPROVE in verbs(invoke_card(body))  # her live view, nothing decided
    assert (await app.engagement(engagement_id)).state is EngagementState.PENDING_APPROVAL
    # The requester's automatic refresh shows the status and Cancel; an outsider's nothing.
    status, body = await app.send(
        invoke_action(
            V.REFRESH,
            {V.ENGAGEMENT_ID: engagement_id},
            user=ALEX,
            trigger="automatic",
            service_url=app.connector.service_url,
            tenant_id=app.tenant_id,
        )
    )
    assert V.CANCEL_REQUEST in verbs(invoke_card(body))
    assert V.APPROVE not in verbs(invoke_card(body))


# --- timers on an injectable clock ------------------------------------------------------------


@pytest.fixture
async def clocked_app(
    tmp_path: Path, connector: ConnectorStandIn
) -> AsyncIterator[tuple[RunningApp, ShiftedClock]]:
    # Real time plus jumps: jobs queued "now" are stamped by the database's clock.
    clock = ShiftedClock()
    app = await build_app(e2e_settings(tmp_path), clock=clock)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as http:
        yield RunningApp(f"http://127.0.0.1:{port}", http, connector, app[COMPONENTS]), clock
    await runner.cleanup()


async def test_reminders_then_escalation_then_expiry_as_time_passes(
    clocked_app: tuple[RunningApp, ShiftedClock],
) -> None:
    app, clock = clocked_app
    await ready(app)
    await install_personal(app, NESTOR)  # Megan's manager
    engagement_id = await submit_valid_request(app)
    await approval_card_for(app, MEGAN, engagement_id)
    await settled(app)

    async def after(hours: float) -> None:
        clock.advance(timedelta(hours=hours).total_seconds())
        await settled(app)

    await after(24)
    assert "still waiting for your decision" in texts_to(app, MEGAN)
    await after(24)
    assert texts_to(app, MEGAN).count("still waiting for your decision") == 2
    await after(24)  # 72 h: to Megan's manager
    engagement = await app.engagement(engagement_id)
    assert (engagement.approver_id, engagement.escalated) == (NESTOR.aad_id, True)
    await approval_card_for(app, NESTOR, engagement_id)
    assert "went to Nestor Wilke" in texts_to(app, ALEX)
    late = await click(app, MEGAN, V.APPROVE, {V.ENGAGEMENT_ID: engagement_id})
    assert "Only Nestor Wilke can decide" in card_text(late)
    await after(96)  # 168 h after the stage began: expired
    assert (await app.engagement(engagement_id)).state is EngagementState.EXPIRED
    assert "expired" in texts_to(app, ALEX)
    # Each timer ran once: one escalation, one expiry.
    async with app.components.storage.transaction() as tx:
        actions = [r.action for r in await tx.audit.list_for_engagement(engagement_id)]
    assert actions.count(A.APPROVAL_ESCALATED) == 1
    assert actions.count(A.ENGAGEMENT_EXPIRED) == 1
    await after(200)
    async with app.components.storage.transaction() as tx:
        again = [r.action for r in await tx.audit.list_for_engagement(engagement_id)]
    assert again.count(A.ENGAGEMENT_EXPIRED) == 1 and again.count(A.APPROVAL_REMINDED) == (
        actions.count(A.APPROVAL_REMINDED)
    )
