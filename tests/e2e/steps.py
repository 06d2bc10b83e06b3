"""Steps of the end-to-end scenarios, spoken the way Teams would speak to the bot."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from cards import verbs as V
from core.model import Actor
from tests.e2e.conftest import ALEX, MARKETING, RunningApp
from tests.support.activities import (
    TestUser,
    conversation_update_bot_added,
    installation_update,
    invoke_action,
    message,
    personal_conversation_id,
)
from tests.support.cards import action_data, card_of, card_text, invoke_card, verbs

FREELANCER_EMAIL = "jane.doe@freelance.example"


def intake_values(**overrides: str) -> dict[str, str]:
    start = date.today() + timedelta(days=3)
    values = {
        "project_title": "Website redesign",
        "description": "Landing pages for the spring campaign",
        "justification": "Nobody in the team builds landing pages; the campaign starts soon",
        "freelancer_name": "Jane Doe",
        "freelancer_email": FREELANCER_EMAIL,
        "start_date": start.isoformat(),
        "end_date": (start + timedelta(days=60)).isoformat(),
        "data_classification": "internal",
        "team_id": MARKETING.aad_group_id,
        "channel_name": "Website redesign",
    }
    values.update(overrides)
    return values


async def install_personal(app: RunningApp, user: TestUser) -> None:
    status, _ = await app.send(
        installation_update(
            user=user, service_url=app.connector.service_url, tenant_id=app.tenant_id
        )
    )
    assert status in (200, 201)


async def install_in_team(app: RunningApp, by: TestUser) -> None:
    for activity in (
        conversation_update_bot_added(
            team=MARKETING, user=by, service_url=app.connector.service_url, tenant_id=app.tenant_id
        ),
        installation_update(
            user=by, team=MARKETING, service_url=app.connector.service_url, tenant_id=app.tenant_id
        ),
    ):
        status, _ = await app.send(activity)
        assert status in (200, 201)


async def say(app: RunningApp, user: TestUser, text: str, **kwargs: Any) -> dict[str, Any]:
    """Send a chat message; return the card the bot replied with."""
    before = len(app.connector.activities())
    status, _ = await app.send(
        message(
            text,
            user=user,
            service_url=app.connector.service_url,
            tenant_id=app.tenant_id,
            **kwargs,
        )
    )
    assert status in (200, 201)
    replies = app.connector.activities()[before:]
    assert replies, f"no reply to {text!r}"
    card = card_of(replies[-1])
    assert card is not None
    return card


async def click(
    app: RunningApp, user: TestUser, verb: str, data: dict[str, Any]
) -> dict[str, Any]:
    status, body = await app.send(
        invoke_action(
            verb, data, user=user, service_url=app.connector.service_url, tenant_id=app.tenant_id
        )
    )
    assert status == 200, body
    return invoke_card(body)


async def submit_valid_request(
    app: RunningApp, requester: TestUser = ALEX, **overrides: str
) -> int:
    """Submit the form, then Confirm its preview; returns the engagement's number."""
    preview = await click(app, requester, V.INTAKE_SUBMIT, intake_values(**overrides))
    card = await confirm_preview(app, requester, preview)
    text = card_text(card)
    assert "FC-" in text, text
    return int(text.split("FC-")[1].split()[0])


async def confirm_preview(
    app: RunningApp, requester: TestUser, preview: dict[str, Any]
) -> dict[str, Any]:
    """Click Confirm on a preview card (it carries the draft's version)."""
    assert V.INTAKE_CONFIRM in verbs(preview), card_text(preview)
    return await click(app, requester, V.INTAKE_CONFIRM, action_data(preview, V.INTAKE_CONFIRM))


def actor(user: TestUser) -> Actor:
    return Actor(aad_id=user.aad_id, name=user.name)


def personal_id(app: RunningApp, user: TestUser) -> str:
    return personal_conversation_id(user)


def texts_to(app: RunningApp, user: TestUser) -> str:
    return " | ".join(card_text(card_of(a)) for a in app.personal_activities(user))
