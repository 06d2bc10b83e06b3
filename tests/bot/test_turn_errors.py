"""Failures inside the bot's turn happen after authentication succeeded: they must never be
reported as 401, even when they are of the exception types botbuilder's auth step raises
(PermissionError, KeyError, ...)."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from botbuilder.core import ActivityHandler, TurnContext
from botbuilder.schema import AdaptiveCardInvokeResponse, AdaptiveCardInvokeValue

from bot.adapter import APOLOGY_TEXT, FreelanceCloudAdapter
from tests.bot.conftest import APP_ID, TENANT_ID, StartBot
from tests.support.activities import TestUser, invoke_action, message
from tests.support.connector import ConnectorStandIn
from tests.support.openid import OpenIdStandIn

CAROL = TestUser(aad_id="aad-carol", user_id="29:carol-mri", name="Carol")


class FailingBot(ActivityHandler):
    """Raises the given exception from its message and card-action handlers."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        self.calls += 1
        raise self.error

    async def on_adaptive_card_invoke(
        self, turn_context: TurnContext, invoke_value: AdaptiveCardInvokeValue
    ) -> AdaptiveCardInvokeResponse:
        self.calls += 1
        raise self.error


class ReplyingBot(ActivityHandler):
    async def on_message_activity(self, turn_context: TurnContext) -> None:
        await turn_context.send_activity("this reply needs an outbound token")


def _message(service_url: str) -> dict[str, object]:
    return message(
        "hi", user=CAROL, service_url=service_url, tenant_id=TENANT_ID, bot_app_id=APP_ID
    )


@pytest.mark.parametrize(
    "error",
    [PermissionError("turn logic"), KeyError("engagement"), AttributeError("x"), IndexError()],
    ids=lambda e: type(e).__name__,
)
async def test_an_exception_in_the_turn_is_handled_by_on_turn_error_not_reported_as_401(
    error: Exception,
    auth_adapter: FreelanceCloudAdapter,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    connector: ConnectorStandIn,
    openid: OpenIdStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = FailingBot(error)
    url = await start_bot(auth_adapter, bot)
    token = openid.mint_token(APP_ID, connector.service_url)

    with caplog.at_level(logging.ERROR, logger="bot.adapter"):
        async with http.post(
            f"{url}/api/messages",
            json=_message(connector.service_url),
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            assert response.status == 201  # accepted; the user got an apology instead

    assert bot.calls == 1
    apology = await connector.wait_for_activity(lambda a: a.get("text") == APOLOGY_TEXT)
    assert apology["type"] == "message"
    failures = [r for r in caplog.records if r.getMessage().startswith("turn failed")]
    assert len(failures) == 1
    assert failures[0].exc_info is not None and failures[0].exc_info[1] is error


async def test_an_unhandled_turn_exception_is_a_500_without_details(
    auth_adapter: FreelanceCloudAdapter,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    connector: ConnectorStandIn,
    openid: OpenIdStandIn,
) -> None:
    auth_adapter.on_turn_error = None  # let the exception escape the adapter
    bot = FailingBot(PermissionError("internal detail that must not leak"))
    url = await start_bot(auth_adapter, bot)
    token = openid.mint_token(APP_ID, connector.service_url)

    async with http.post(
        f"{url}/api/messages",
        json=_message(connector.service_url),
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        assert response.status == 500
        text = await response.text()

    assert bot.calls == 1
    assert "internal detail" not in text
    assert "Traceback" not in text
    assert "PermissionError" not in text


async def test_an_exception_in_a_card_action_answers_the_invoke_with_an_error_body(
    open_adapter: FreelanceCloudAdapter,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    connector: ConnectorStandIn,
) -> None:
    url = await start_bot(open_adapter, FailingBot(PermissionError("turn logic")))
    body = invoke_action(
        "approve",
        {"engagementId": "FC-3"},
        user=CAROL,
        service_url=connector.service_url,
        tenant_id=TENANT_ID,
    )

    async with http.post(f"{url}/api/messages", json=body) as response:
        # Not 401, and not botbuilder's 501 "not implemented" either.
        assert response.status == 500
        assert await response.json() == {
            "statusCode": 500,
            "type": "application/vnd.microsoft.error",
            "value": {"code": "InternalError", "message": "The action failed."},
        }


async def test_a_refused_outbound_token_inside_the_turn_is_not_reported_as_401(
    auth_adapter: FreelanceCloudAdapter,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    connector: ConnectorStandIn,
    outbound: OpenIdStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # MSAL's failure surfaces as PermissionError from send_activity, i.e. from the turn.
    outbound.fail_token_requests()
    requests_before = len(outbound.token_requests)
    url = await start_bot(auth_adapter, ReplyingBot())
    token = outbound.mint_token(APP_ID, connector.service_url)

    with caplog.at_level(logging.WARNING, logger="bot.adapter"):
        async with http.post(
            f"{url}/api/messages",
            json=_message(connector.service_url),
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            assert response.status == 201

    assert len(outbound.token_requests) > requests_before
    assert connector.activities() == []  # neither the reply nor the apology got out
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("turn failed") for m in messages)
    assert any("could not tell the user" in m for m in messages)
    assert not any("rejected inbound request" in m for m in messages)
