"""The whole loop over real HTTP: install, /request, intake, approval, provisioning through the
Graph simulator, welcome post and notices through the Bot Connector stand-in."""

from __future__ import annotations

from cards import verbs as V
from core import audit_actions as A
from core.model import EngagementState
from tests.e2e.conftest import ALEX, ISAIAH, MARKETING, MEGAN, NESTOR, RunningApp
from tests.e2e.steps import (
    FREELANCER_EMAIL,
    actor,
    click,
    install_in_team,
    install_personal,
    intake_values,
    personal_id,
    say,
    submit_valid_request,
    texts_to,
)
from tests.support.cards import action_data, card_of, card_text, inputs, verbs


async def test_request_to_provisioned_channel_over_real_http(running_app: RunningApp) -> None:
    app = running_app
    await install_personal(app, ALEX)
    await install_personal(app, MEGAN)
    await install_in_team(app, ALEX)
    greeting = card_text(card_of(app.personal_activities(ALEX)[0]))
    assert "/request" in greeting

    # Intake: the form offers the team where the bot is installed.
    form = await say(app, ALEX, "/request")
    team_choice = inputs(form)["team_id"]
    assert [c["value"] for c in team_choice["choices"]] == [MARKETING.aad_group_id]

    # Wrong input: the same form comes back with the values kept and one message per field.
    card = await click(
        app,
        ALEX,
        V.INTAKE_SUBMIT,
        intake_values(freelancer_email="jane@", channel_name="Web/Design"),
    )
    fields = inputs(card)
    assert fields["freelancer_email"]["value"] == "jane@"
    assert fields["project_title"]["value"] == "Website redesign"
    text = card_text(card)
    assert "valid e-mail" in text and "can't contain /" in text
    assert await app.components.service.list_mine(actor(ALEX)) == []

    # A valid form creates FC-1, waiting for Alex's manager Megan.
    engagement_id = await submit_valid_request(app)
    approval = await app.connector.wait_for_activity(
        lambda a: V.APPROVE in verbs(card_of(a)), timeout=10
    )
    assert approval["conversation"]["id"] == personal_id(app, MEGAN)
    approval_card = card_of(approval)
    assert action_data(approval_card, V.APPROVE) == {V.ENGAGEMENT_ID: engagement_id}
    await app.wait_until(lambda: "with Megan Bowen" in texts_to(app, ALEX), what="routed notice")

    # Isaiah is not the approver: refused, nothing changes, the refusal is audited.
    refused = await click(app, ISAIAH, V.APPROVE, {V.ENGAGEMENT_ID: engagement_id})
    assert "Only Megan Bowen can decide" in card_text(refused)
    assert V.APPROVE not in verbs(refused)
    assert (await app.engagement(engagement_id)).state is EngagementState.PENDING_APPROVAL

    # Rejecting needs a reason.
    no_reason = await click(app, MEGAN, V.REJECT, {V.ENGAGEMENT_ID: engagement_id})
    assert "give a reason" in card_text(no_reason)
    assert (await app.engagement(engagement_id)).state is EngagementState.PENDING_APPROVAL

    # Megan approves; a second click changes nothing and says who decided.
    approved = await click(app, MEGAN, V.APPROVE, {V.ENGAGEMENT_ID: engagement_id})
    assert "Approved by Megan Bowen" in card_text(approved)
    assert V.APPROVE not in verbs(approved)
    again = await click(app, MEGAN, V.APPROVE, {V.ENGAGEMENT_ID: engagement_id})
    assert "Already approved by Megan Bowen" in card_text(again)

    engagement = await app.wait_for_state(engagement_id, EngagementState.ACTIVE)

    # Graph: one private channel owned by Alex, one invitation, the guest in team and channel.
    sim = app.simulator
    channels = [
        c for c in sim.channels(MARKETING.aad_group_id) if c.display_name == "Website redesign"
    ]
    assert len(channels) == 1
    channel = channels[0]
    assert channel.membership_type == "private"
    assert channel.id == engagement.channel_id
    owners = [m.user_id for m in channel.members.values() if "owner" in m.roles]
    assert owners == [ALEX.aad_id]
    invitations = [i for i in sim.invitations if i.invited_user_email_address == FREELANCER_EMAIL]
    assert len(invitations) == 1
    guest_id = invitations[0].invited_user_id
    assert engagement.guest_user_id == guest_id
    assert [
        m.roles for m in sim.team_members(MARKETING.aad_group_id) if m.user_id == guest_id
    ] == [["guest"]]
    assert guest_id in {m.user_id for m in sim.channel_members(MARKETING.aad_group_id, channel.id)}

    # Teams: the welcome is a new post in the new channel; Alex and Megan are told.
    welcome = [
        c
        for c in app.connector.conversations
        if (c.parameters.get("channelData") or {}).get("channel", {}).get("id") == channel.id
    ]
    assert len(welcome) == 1
    assert "Welcome, Jane Doe" in card_text(card_of(welcome[0].parameters["activity"]))
    await app.wait_until(lambda: "is ready" in texts_to(app, ALEX), what="Alex's ready notice")
    await app.wait_until(lambda: "is ready" in texts_to(app, MEGAN), what="Megan's ready notice")

    # Commands: /status for the requester; /pending for admins only.
    status_card = await say(app, ALEX, "/status")
    assert f"FC-{engagement_id}" in card_text(status_card)
    assert "Active" in card_text(status_card)
    refusal = await say(app, ALEX, "/pending")
    assert "admins only" in card_text(refusal)
    pending = await say(app, NESTOR, "/pending")
    assert "No engagements are waiting" in card_text(pending)

    # Audit: every decision, Graph change and admin command, with actor and outcome.
    async with app.components.storage.transaction() as tx:
        records = await tx.audit.list_for_engagement(engagement_id)
    actions = [(r.action, r.outcome.value) for r in records]
    for expected in [
        (A.ENGAGEMENT_SUBMITTED, "ok"),
        (A.APPROVAL_ROUTED, "ok"),
        (A.APPROVAL_CARD_SENT, "ok"),
        (A.DECISION_REFUSED, "refused"),
        (A.ENGAGEMENT_APPROVED, "ok"),
        (A.GRAPH_CHANNEL_CREATED, "ok"),
        (A.GRAPH_GUEST_INVITED, "ok"),
        (A.GRAPH_TEAM_MEMBER_ADDED, "ok"),
        (A.GRAPH_CHANNEL_MEMBER_ADDED, "ok"),
        (A.WELCOME_POSTED, "ok"),
        (A.PROVISIONING_COMPLETED, "ok"),
    ]:
        assert expected in actions, (expected, actions)
    approved_record = next(r for r in records if r.action == A.ENGAGEMENT_APPROVED)
    assert approved_record.actor_id == MEGAN.aad_id


async def test_request_with_an_email_and_a_title_opens_the_form_filled_in(
    running_app: RunningApp,
) -> None:
    app = running_app
    await install_personal(app, ALEX)
    await install_in_team(app, ALEX)
    form = await say(app, ALEX, "/request jane@contoso.com Website redesign")
    fields = inputs(form)
    assert fields["freelancer_email"]["value"] == "jane@contoso.com"
    assert fields["project_title"]["value"] == "Website redesign"
    assert fields["channel_name"]["value"] == "Website redesign"
    assert fields["freelancer_name"].get("value", "") == ""
    # Hostile arguments are bounded and shown as plain values; nothing is stored.
    form = await say(app, ALEX, "/request **bold** <b>x</b> \u202e" + "y" * 5_000)
    title = inputs(form)["project_title"]["value"]
    assert len(title) <= 100 and "\u202e" not in title
    assert await app.components.service.list_mine(actor(ALEX)) == []
