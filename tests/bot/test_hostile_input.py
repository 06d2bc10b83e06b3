"""Regression tests for what the fuzz test (tests/e2e/test_fuzz_activities.py) found at the
adapter: requests that reached botbuilder in a shape it fails on, so that a bad request became a
500 or a failed turn (an ERROR with a traceback) instead of a 400.

Each test names the bug; together they prove the adapter refuses such a request with 400 before
any handler runs, or, for botbuilder's own 400 answers, writes them instead of failing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from botbuilder.core import TurnContext
from botbuilder.core.teams import TeamsActivityHandler
from botbuilder.schema import AdaptiveCardInvokeResponse, AdaptiveCardInvokeValue

from bot.adapter import MAX_ID_LENGTH, FreelanceCloudAdapter
from tests.bot.conftest import TENANT_ID, StartBot
from tests.support.activities import (
    TestTeam,
    TestUser,
    conversation_update_bot_added,
    invoke_action,
    message,
)
from tests.support.connector import ConnectorStandIn

BOB = TestUser(aad_id="aad-bob", user_id="29:bob", name="Bob")
TEAM = TestTeam(team_id="19:general@thread.tacv2", name="Contoso", aad_group_id="group-1")


class RecordingBot(TeamsActivityHandler):  # type: ignore[misc]
    """Answers messages and card actions; records the type of every activity it was handed."""

    def __init__(self) -> None:
        self.handled: list[str] = []

    async def on_turn(self, turn_context: TurnContext) -> None:
        self.handled.append(turn_context.activity.type)
        await super().on_turn(turn_context)

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        await turn_context.send_activity("ok")

    async def on_adaptive_card_invoke(
        self, turn_context: TurnContext, invoke_value: AdaptiveCardInvokeValue
    ) -> AdaptiveCardInvokeResponse:
        return AdaptiveCardInvokeResponse(
            status_code=200, type="application/vnd.microsoft.card.adaptive", value={}
        )


Post = Callable[[dict[str, Any] | bytes], Any]


@pytest.fixture
def bot() -> RecordingBot:
    return RecordingBot()


@pytest.fixture
async def post(
    open_adapter: FreelanceCloudAdapter,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    bot: RecordingBot,
) -> Post:
    url = f"{await start_bot(open_adapter, bot)}/api/messages"

    async def send(body: dict[str, Any] | bytes) -> tuple[int, Any]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        async with http.post(url, data=raw, headers=headers) as response:
            text = await response.text()
            return response.status, json.loads(text) if text else None

    return send


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def hello(connector: ConnectorStandIn, **changes: Any) -> dict[str, Any]:
    activity = message("hello", user=BOB, service_url=connector.service_url, tenant_id=TENANT_ID)
    activity.update(changes)
    return activity


async def test_a_malformed_action_execute_gets_botbuilders_400_instead_of_a_500(
    post: Post, connector: ConnectorStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    """botbuilder answers these with 400 and the error as an Exception(code, message), which
    msrest could not serialize: the 400 became a 500."""
    for value, code in [
        (None, "BadRequest"),
        ({"action": None}, "BadRequest"),
        ({"action": {"type": "Action.Submit", "verb": "x"}}, "NotSupported"),
    ]:
        activity = invoke_action(
            "x", {}, user=BOB, service_url=connector.service_url, tenant_id=TENANT_ID
        )
        activity["value"] = value
        status, body = await post(activity)
        assert status == 400, (value, body)
        assert body["statusCode"] == 400
        assert body["type"] == "application/vnd.microsoft.error"
        assert body["value"]["code"] == code and body["value"]["message"]
    assert errors(caplog) == []


async def test_nul_characters_and_lone_surrogate_escapes_are_refused_before_the_turn(
    post: Post, connector: ConnectorStandIn, bot: RecordingBot, caplog: pytest.LogCaptureFixture
) -> None:
    """JSON allows "\\ud800" alone and "\\u0000". Storing or replying with the first failed the
    turn (UnicodeEncodeError in SQLite and in the reply's URL); PostgreSQL refuses the second
    in any text column, so a user named with a NUL failed every turn there."""
    for text in ["a\\ud800b", "\\udfff", "\\ud83d", "a\\u0000b"]:
        body = json.dumps(hello(connector, text="TEXT")).replace("TEXT", text).encode()
        status, answer = await post(body)
        assert status == 400, text
        assert "lone surrogate" in answer["error"]["message"]
    named = hello(connector)
    named["from"]["name"] = "Bob\x00"
    assert (await post(named))[0] == 400
    assert bot.handled == []
    # An escaped pair is one character (an emoji); an escaped backslash before "u0000" is text.
    for text in ["\\ud83d\\ude00", "\\\\u0000"]:
        body = json.dumps(hello(connector, text="TEXT")).replace("TEXT", text).encode()
        assert (await post(body))[0] == 201, text
    assert errors(caplog) == []


async def test_a_type_or_service_url_of_the_wrong_json_type_is_refused_not_coerced(
    post: Post, connector: ConnectorStandIn, bot: RecordingBot, caplog: pytest.LogCaptureFixture
) -> None:
    """msrest turned 5 into "5" and ["message"] into "['message']"; a serviceUrl that is not an
    http(s) URL failed the turn at its first reply."""
    wrong: list[dict[str, Any]] = [
        {"type": 5},
        {"type": ["message"]},
        {"type": {"message": True}},
        {"serviceUrl": 5},
        {"serviceUrl": "not a url"},
        {"serviceUrl": ["http://x/"]},
    ]
    for changes in wrong:
        status, _ = await post(hello(connector, **changes))
        assert status == 400, changes
    assert bot.handled == []
    assert errors(caplog) == []


async def test_an_activity_without_a_conversation_id_is_refused_instead_of_failing(
    post: Post, connector: ConnectorStandIn, bot: RecordingBot, caplog: pytest.LogCaptureFixture
) -> None:
    """Without one, replying raised AttributeError / ValidationError: a failed turn, or a 500
    for an invoke."""
    without = hello(connector)
    del without["conversation"]
    statuses = [(await post(without))[0]]
    for conversation in [None, {}, {"id": None}, {"id": ""}, {"id": 5}, "a:1x", [1]]:
        statuses.append((await post(hello(connector, conversation=conversation)))[0])
    assert set(statuses) == {400}
    assert bot.handled == []
    assert errors(caplog) == []


async def test_ids_that_cannot_go_into_a_reply_url_or_header_are_refused(
    post: Post, connector: ConnectorStandIn, bot: RecordingBot, caplog: pytest.LogCaptureFixture
) -> None:
    """A reply puts the conversation id into its URL and its x-ms-conversation-id header and the
    activity id into its URL: a line break there failed the turn ("Forbidden control character
    in headers"), a very long id made a URL the Bot Connector refuses."""
    conversation = hello(connector)["conversation"]
    unusable: list[dict[str, Any]] = [
        {"conversation": {**conversation, "id": "a:1\r\nX-Injected: 1"}},
        {"conversation": {**conversation, "id": "a:1\x00"}},
        {"conversation": {**conversation, "id": "a" * (MAX_ID_LENGTH + 1)}},
        {"id": "1" * 10_000},
        {"id": "17000\n"},
        {"id": {"not": "a string"}},
    ]
    for changes in unusable:
        status, _ = await post(hello(connector, **changes))
        assert status == 400, changes
    assert bot.handled == []
    # Odd but usable ids are fine: the reply's URL escapes them.
    odd = {**conversation, "id": "19:{odd} #?%é@thread.v2"}
    assert (await post(hello(connector, conversation=odd, id="{x}")))[0] == 201
    assert errors(caplog) == []


async def test_teams_channel_data_of_the_wrong_shape_is_refused_instead_of_failing(
    post: Post, connector: ConnectorStandIn, bot: RecordingBot, caplog: pytest.LogCaptureFixture
) -> None:
    """botbuilder's Teams handler reads channelData with msrest for conversation updates and
    message edits; a field of the wrong type (a team that is a number) failed the turn."""
    added = conversation_update_bot_added(
        team=TEAM, user=BOB, service_url=connector.service_url, tenant_id=TENANT_ID
    )
    for channel_data in [{**added["channelData"], "team": 5}, {"tenant": "x"}, [1], "data"]:
        status, _ = await post({**added, "channelData": channel_data})
        assert status == 400, channel_data
    edited = hello(connector, type="messageUpdate", channelData={"eventType": ["editMessage"]})
    assert (await post(edited))[0] == 201
    assert (await post({**edited, "channelData": {"team": [1]}}))[0] == 400
    assert bot.handled == ["messageUpdate"]
    assert errors(caplog) == []
