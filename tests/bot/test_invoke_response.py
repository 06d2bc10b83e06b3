"""Regression tests for botbuilder-integration-aiohttp 4.17.1's CloudAdapter answering every
invoke that has a response body with HTTP 500: it serializes `InvokeResponse.body` a second time
after ActivityHandler already made it a dict (stack-check 2e; microsoft/teams-sdk#2547)."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web
from botbuilder.core import ActivityHandler, InvokeResponse, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import AdaptiveCardInvokeResponse, AdaptiveCardInvokeValue

from bot.adapter import FreelanceCloudAdapter
from tests.bot.conftest import TENANT_ID, StartBot
from tests.support.activities import TestUser, invoke_action
from tests.support.connector import ConnectorStandIn

BOB = TestUser(aad_id="aad-bob", user_id="29:bob-mri", name="Bob")


def _card(text: str) -> dict[str, Any]:
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "body": [{"type": "TextBlock", "text": text, "wrap": True}],
    }


class CardBot(ActivityHandler):
    """Answers Action.Execute with a replacement card, as the approval cards do."""

    def __init__(self) -> None:
        self.actions: list[dict[str, Any]] = []

    async def on_adaptive_card_invoke(
        self, turn_context: TurnContext, invoke_value: AdaptiveCardInvokeValue
    ) -> AdaptiveCardInvokeResponse:
        # In 4.17.1 the action arrives as a plain dict (stack-check 2d).
        self.actions.append(invoke_value.action)
        return AdaptiveCardInvokeResponse(
            status_code=200,
            type="application/vnd.microsoft.card.adaptive",
            value=_card(f"Approved {invoke_value.action['data']['engagementId']}"),
        )


class ModelBodyBot(ActivityHandler):
    """Returns an InvokeResponse whose body is still an msrest model (not pre-serialized)."""

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
        return InvokeResponse(
            status=200,
            body=AdaptiveCardInvokeResponse(
                status_code=200, type="application/vnd.microsoft.card.adaptive", value=_card("m")
            ),
        )


def _approve(service_url: str) -> dict[str, Any]:
    return invoke_action(
        "approve",
        {"engagementId": "FC-12"},
        user=BOB,
        reply_to_id="1700000000000",
        service_url=service_url,
        tenant_id=TENANT_ID,
    )


async def test_invoke_response_with_a_body_returned_500_on_cloud_adapter(
    open_adapter: FreelanceCloudAdapter,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    connector: ConnectorStandIn,
) -> None:
    bot = CardBot()
    url = await start_bot(open_adapter, bot)

    async with http.post(f"{url}/api/messages", json=_approve(connector.service_url)) as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        body = await response.json()

    assert body == {
        "statusCode": 200,
        "type": "application/vnd.microsoft.card.adaptive",
        "value": _card("Approved FC-12"),
    }
    assert bot.actions == [
        {"type": "Action.Execute", "id": "", "verb": "approve", "data": {"engagementId": "FC-12"}}
    ]
    # The invoke response is the HTTP answer; nothing goes to the connector.
    assert connector.calls == []


async def test_an_invoke_response_body_that_is_still_a_model_is_serialized_once(
    open_adapter: FreelanceCloudAdapter,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    connector: ConnectorStandIn,
) -> None:
    url = await start_bot(open_adapter, ModelBodyBot())

    async with http.post(f"{url}/api/messages", json=_approve(connector.service_url)) as response:
        assert response.status == 200
        assert await response.json() == {
            "statusCode": 200,
            "type": "application/vnd.microsoft.card.adaptive",
            "value": _card("m"),
        }


async def test_an_invoke_the_bot_does_not_handle_still_answers_501(
    open_adapter: FreelanceCloudAdapter,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    connector: ConnectorStandIn,
) -> None:
    # ActivityHandler's own answer for an unimplemented adaptiveCard/action must survive the
    # rewritten response writer.
    url = await start_bot(open_adapter, ActivityHandler())
    async with http.post(f"{url}/api/messages", json=_approve(connector.service_url)) as response:
        assert response.status == 501


async def test_upstream_cloud_adapter_still_has_the_bug_the_workaround_exists_for(
    http: aiohttp.ClientSession, connector: ConnectorStandIn
) -> None:
    """A canary: when this fails, botbuilder has fixed the double serialization and
    FreelanceCloudAdapter's own response writer could be dropped."""

    class Settings:
        APP_ID = ""
        APP_PASSWORD = ""

    upstream = CloudAdapter(ConfigurationBotFrameworkAuthentication(Settings()))
    bot = CardBot()

    async def messages(request: web.Request) -> web.StreamResponse:
        response = await upstream.process(request, bot)
        assert response is not None
        return response

    app = web.Application()
    app.router.add_post("/api/messages", messages)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with http.post(
            f"http://127.0.0.1:{port}/api/messages", json=_approve(connector.service_url)
        ) as response:
            assert response.status == 500
    finally:
        await runner.cleanup()
    assert len(bot.actions) == 1  # the turn itself ran; only writing the answer failed
