"""The per-turn savings of bot/connector_fast.py and bot/patches.py, each checked functionally:
replies, proactive sends, updates, deletes and errors still reach (or come back from) the Bot
Connector stand-in the way botbuilder's own transport delivers them, with the right bearer
token. Speed itself is measured only by bench/turns.py."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import enum
import threading
from typing import Any

import aiohttp
import pytest
from botbuilder.core import (
    ActivityHandler,
    BotAdapter,
    CardFactory,
    MessageFactory,
    TurnContext,
)
from botbuilder.schema import Activity, ConversationReference
from botframework.connector import models as connector_models
from botframework.connector.auth import PasswordServiceClientCredentialFactory
from botframework.connector.auth._connector_factory_impl import _ConnectorFactoryImpl
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor, _OpenIdMetadata
from msrest import Serializer
from msrest.universal_http import requests as msrest_requests

from bot import patches
from bot.adapter import BotAuthConfig, FreelanceCloudAdapter, create_adapter
from bot.connector_fast import (
    CachingConnectorFactory,
    ConnectorClientCache,
    ConnectorTransport,
    LazyUserTokenClient,
    PlainJsonSerializer,
    ReplyCopyingTurnContext,
    ReusingBotFrameworkAuthentication,
)
from bot.notifier import _status_of
from tests.bot.conftest import APP_ID, APP_PASSWORD, TENANT_ID, StartBot
from tests.support.activities import TestUser, message
from tests.support.connector import ConnectorStandIn
from tests.support.openid import OpenIdStandIn

ERIN = TestUser(aad_id="aad-erin", user_id="29:erin-mri", name="Erin")


def _card(rows: int) -> dict[str, Any]:
    return {
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": [
            {
                "type": "ColumnSet",
                "columns": [
                    {
                        "type": "Column",
                        "width": 1,
                        "items": [{"type": "TextBlock", "text": f"r{i}"}],
                    }
                ],
                "spacing": None,
                "isVisible": True,
                "weight": 0.5,
            }
            for i in range(rows)
        ],
        "actions": [{"type": "Action.Execute", "verb": "refresh", "data": {"id": 7}}],
    }


class RecordingBot(ActivityHandler):
    """Replies with a card; records the connector client and user-token client of each turn."""

    def __init__(self) -> None:
        self.connector_clients: list[Any] = []
        self.user_token_clients: list[Any] = []
        self.contexts: list[TurnContext] = []

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        state = turn_context.turn_state
        self.connector_clients.append(state.get(BotAdapter.BOT_CONNECTOR_CLIENT_KEY))
        self.user_token_clients.append(state.get("UserTokenClient"))
        self.contexts.append(turn_context)
        await turn_context.send_activity(
            MessageFactory.attachment(CardFactory.adaptive_card(_card(3)))
        )


def _message(service_url: str, text: str = "hi") -> dict[str, Any]:
    return message(
        text, user=ERIN, service_url=service_url, tenant_id=TENANT_ID, bot_app_id=APP_ID
    )


# --- bot/patches.py --------------------------------------------------------------------------


def test_patches_are_applied_by_the_adapter_and_idempotent() -> None:
    create_adapter(BotAuthConfig())
    assert patches.applied()
    refresh, codes = _OpenIdMetadata._refresh, msrest_requests.ClientRetryPolicy.safe_codes
    patches.apply()
    patches.apply()
    assert _OpenIdMetadata._refresh is refresh
    assert msrest_requests.ClientRetryPolicy.safe_codes is codes


def test_the_retry_code_patch_keeps_msrest_retrying_the_same_statuses() -> None:
    patches.apply()
    upstream_safe = [i for i in range(500) if i != 408] + [501, 505]
    policy = msrest_requests.ClientRetryPolicy()
    assert isinstance(msrest_requests.ClientRetryPolicy.safe_codes, frozenset)
    assert set(msrest_requests.ClientRetryPolicy.safe_codes) == set(upstream_safe)
    assert policy.policy.status_forcelist == [i for i in range(999) if i not in upstream_safe]


async def test_the_openid_key_refresh_runs_off_the_event_loop(
    auth_adapter: FreelanceCloudAdapter,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    connector: ConnectorStandIn,
    openid: OpenIdStandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fetched_on: list[threading.Thread] = []
    fetch = patches._fetch_openid_keys

    def recording_fetch(url: str) -> list[dict[str, Any]]:
        fetched_on.append(threading.current_thread())
        return fetch(url)

    monkeypatch.setattr(patches, "_fetch_openid_keys", recording_fetch)
    JwtTokenExtractor.metadataCache.pop(openid.metadata_url, None)  # force a refresh
    url = await start_bot(auth_adapter, RecordingBot())
    token = openid.mint_token(APP_ID, connector.service_url)

    async with http.post(
        f"{url}/api/messages",
        json=_message(connector.service_url),
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        assert response.status == 201

    assert fetched_on and all(t is not threading.current_thread() for t in fetched_on)
    await connector.wait_for(lambda call: call.operation == "ReplyToActivity")


# --- connector clients: reuse and separation -------------------------------------------------


async def test_turns_to_one_service_url_reuse_one_client_and_one_session(
    open_adapter: FreelanceCloudAdapter,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    connector: ConnectorStandIn,
) -> None:
    bot = RecordingBot()
    url = await start_bot(open_adapter, bot)

    for text in ("one", "two", "three"):
        async with http.post(
            f"{url}/api/messages", json=_message(connector.service_url, text)
        ) as response:
            assert response.status == 201

    replies = [c for c in connector.calls if c.operation == "ReplyToActivity"]
    assert len(replies) == 3
    assert all(call.authorization is None for call in replies)  # auth disabled
    assert replies[0].json["attachments"][0]["content"] == _card(3)
    assert len({id(client) for client in bot.connector_clients}) == 1
    cache = open_adapter.connector_clients
    assert cache.created == 1
    assert cache.transport.sessions_created == 1


async def test_each_service_url_gets_its_own_client_and_its_replies(
    open_adapter: FreelanceCloudAdapter,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    connector: ConnectorStandIn,
) -> None:
    bot = RecordingBot()
    url = await start_bot(open_adapter, bot)
    with ConnectorStandIn() as other:
        other_url = other.service_url
        for service_url in (connector.service_url, other.service_url, connector.service_url):
            async with http.post(f"{url}/api/messages", json=_message(service_url)) as response:
                assert response.status == 201
        assert len([c for c in other.calls if c.operation == "ReplyToActivity"]) == 1
    assert len([c for c in connector.calls if c.operation == "ReplyToActivity"]) == 2
    first, second, third = bot.connector_clients
    assert first is third and first is not second
    assert second.config.base_url == other_url
    assert open_adapter.connector_clients.created == 2


async def test_replies_carry_the_msal_token_and_the_credentials_are_reused(
    auth_adapter: FreelanceCloudAdapter,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    connector: ConnectorStandIn,
    outbound: OpenIdStandIn,
) -> None:
    url = await start_bot(auth_adapter, RecordingBot())
    token_requests_before = len(outbound.token_requests)

    for text in ("one", "two"):
        token = outbound.mint_token(APP_ID, connector.service_url)
        async with http.post(
            f"{url}/api/messages",
            json=_message(connector.service_url, text),
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            assert response.status == 201

    replies = [c for c in connector.calls if c.operation == "ReplyToActivity"]
    assert [c.bearer_token for c in replies] == [outbound.outbound_token] * 2
    # One client, one credentials object, one MSAL app: one token request for both replies.
    assert len(outbound.token_requests) - token_requests_before == 1
    grant = outbound.token_requests[-1]
    assert grant["client_id"] == APP_ID
    assert grant["scope"] == "https://api.botframework.com/.default"


async def test_clients_are_separate_per_app_id_audience_and_service_url() -> None:
    cache = ConnectorClientCache(ConnectorTransport())
    credentials = PasswordServiceClientCredentialFactory(APP_ID, APP_PASSWORD)
    others = PasswordServiceClientCredentialFactory("22222222-0000-0000-0000-000000000000", "x")
    login = "https://login.microsoftonline.com/botframework.com"
    scope = "https://api.botframework.com"

    def factory(app_id: str, credential_factory: Any) -> CachingConnectorFactory:
        return CachingConnectorFactory(
            _ConnectorFactoryImpl(app_id, scope, login, True, credential_factory), cache
        )

    ours = factory(APP_ID, credentials)
    a = await ours.create("https://smba.example/amer/")
    assert await ours.create("https://smba.example/amer/") is a
    assert await factory(APP_ID, credentials).create("https://smba.example/amer/") is a
    b = await ours.create("https://smba.example/emea/")
    c = await ours.create("https://smba.example/amer/", "https://other-audience.example")
    other_id = "22222222-0000-0000-0000-000000000000"
    d = await factory(other_id, others).create("https://smba.example/amer/")

    assert len({id(x) for x in (a, b, c, d)}) == 4
    assert a.config.credentials.microsoft_app_id == APP_ID
    assert c.config.credentials.oauth_scope == "https://other-audience.example"
    assert d.config.credentials.microsoft_app_id == other_id
    assert b.config.base_url == "https://smba.example/emea/"
    assert cache.created == 4


async def test_the_cache_drops_the_least_recently_used_client() -> None:
    cache = ConnectorClientCache(ConnectorTransport(), max_clients=2)
    factory = CachingConnectorFactory(
        _ConnectorFactoryImpl(
            "", "scope", "", True, PasswordServiceClientCredentialFactory("", "")
        ),
        cache,
    )
    first = await factory.create("http://one/")
    await factory.create("http://two/")
    await factory.create("http://one/")
    await factory.create("http://three/")  # drops two, the least recently used
    assert len(cache) == 2
    assert await factory.create("http://one/") is first
    assert cache.created == 3


async def test_the_user_token_client_is_made_only_when_used(
    open_adapter: FreelanceCloudAdapter,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    connector: ConnectorStandIn,
) -> None:
    bot = RecordingBot()
    url = await start_bot(open_adapter, bot)
    async with http.post(f"{url}/api/messages", json=_message(connector.service_url)) as r:
        assert r.status == 201

    lazy = bot.user_token_clients[0]
    assert isinstance(lazy, LazyUserTokenClient)
    assert not lazy.created
    real = await lazy._real()
    assert type(real).__name__ == "_UserTokenClientImpl"
    assert await lazy._real() is real


def test_the_adapter_keeps_botbuilders_authentication_reachable() -> None:
    adapter = create_adapter(BotAuthConfig(app_id=APP_ID, app_password=APP_PASSWORD))
    authentication = adapter.bot_framework_authentication
    assert isinstance(authentication, ReusingBotFrameworkAuthentication)
    assert type(authentication._inner).__name__ == "_PublicCloudBotFrameworkAuthentication"
    # Wrapping a wrapped authentication again would nest caches.
    again = FreelanceCloudAdapter(authentication, auth_enabled=True)
    assert again.bot_framework_authentication is authentication


# --- proactive sends, updates, deletes and errors over the new transport ---------------------


def _reference(service_url: str) -> ConversationReference:
    return ConversationReference().deserialize(
        {
            "activityId": "1700000000001",
            "user": ERIN.account(),
            "bot": {"id": f"28:{APP_ID}", "name": "Freelance Connector"},
            "conversation": {"id": "a:1erin", "conversationType": "personal"},
            "channelId": "msteams",
            "serviceUrl": service_url,
        }
    )


async def test_proactive_send_update_and_delete_reach_the_connector_with_the_token(
    auth_adapter: FreelanceCloudAdapter, connector: ConnectorStandIn, outbound: OpenIdStandIn
) -> None:
    results: dict[str, Any] = {}

    async def logic(turn_context: TurnContext) -> None:
        sent = await turn_context.send_activity(MessageFactory.text("approval needed"))
        update = MessageFactory.text("approved")
        update.id = sent.id
        await turn_context.update_activity(update)
        await turn_context.delete_activity(sent.id)
        results["id"] = sent.id

    await auth_adapter.continue_conversation(_reference(connector.service_url), logic, APP_ID)

    operations = [call.operation for call in connector.calls]
    assert operations == ["ReplyToActivity", "UpdateActivity", "DeleteActivity"]
    assert all(call.bearer_token == outbound.outbound_token for call in connector.calls)
    assert results["id"]
    assert connector.calls[1].match["activity_id"] == results["id"]
    assert connector.calls[1].json["text"] == "approved"
    await auth_adapter.close()


async def test_connector_errors_keep_status_and_retry_after_for_the_notifier(
    open_adapter: FreelanceCloudAdapter, connector: ConnectorStandIn
) -> None:
    connector.fail_next("POST", r"/activities", 429, headers={"Retry-After": "7"})
    failures: list[BaseException] = []

    async def logic(turn_context: TurnContext) -> None:
        try:
            await turn_context.send_activity("hello")
        except Exception as exc:
            failures.append(exc)

    await open_adapter.continue_conversation(_reference(connector.service_url), logic, "")

    assert len(failures) == 1
    error: Any = failures[0]
    assert isinstance(error, connector_models.ErrorResponseException)
    assert error.response.status_code == 429
    assert error.error.error.code == "Throttled"
    assert _status_of(error) == (429, 7.0)
    await open_adapter.close()


async def test_an_unreachable_connector_is_a_status_less_request_error(
    open_adapter: FreelanceCloudAdapter,
) -> None:
    with ConnectorStandIn() as gone:
        service_url = gone.service_url
    failures: list[BaseException] = []

    async def logic(turn_context: TurnContext) -> None:
        try:
            await turn_context.send_activity("hello")
        except Exception as exc:
            failures.append(exc)

    await open_adapter.continue_conversation(_reference(service_url), logic, "")
    assert len(failures) == 1
    assert type(failures[0]).__name__ == "ClientRequestError"
    assert _status_of(failures[0]) == (None, None)  # the Notifier retries these
    await open_adapter.close()


async def test_the_outbound_session_is_closed_with_the_app(
    open_adapter: FreelanceCloudAdapter, connector: ConnectorStandIn
) -> None:
    async def logic(turn_context: TurnContext) -> None:
        await turn_context.send_activity("hello")

    await open_adapter.continue_conversation(_reference(connector.service_url), logic, "")
    session = await open_adapter.connector_clients.transport.session()
    assert not session.closed
    await open_adapter.close()
    assert session.closed


# --- serialization and copies ----------------------------------------------------------------


class _Colour(enum.Enum):
    RED = "red"


def _upstream_body(activity: Activity) -> Any:
    serializer = Serializer(
        {k: v for k, v in connector_models.__dict__.items() if isinstance(v, type)}
    )
    return serializer.body(activity, "Activity")


@pytest.mark.parametrize(
    "content",
    [
        _card(20),
        {"nested": [[1, 2.5, True, None, "x"], {"k": {"deeper": [False]}}]},
        # Not plain JSON: msrest's own conversions must still apply.
        {"when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "colour": _Colour.RED},
        {"day": dt.date(2026, 1, 2), "items": ({"a": 1},)},
    ],
)
def test_the_plain_json_serializer_produces_msrests_body(content: dict[str, Any]) -> None:
    activity = MessageFactory.attachment(CardFactory.adaptive_card(content))
    activity.channel_data = {"tenant": {"id": TENANT_ID}, "notification": {"alert": True}}
    activity.value = {"count": 3}
    serializer = PlainJsonSerializer(
        {k: v for k, v in connector_models.__dict__.items() if isinstance(v, type)}
    )
    assert serializer.body(activity, "Activity") == _upstream_body(activity)


async def test_replies_leave_the_callers_activity_untouched(
    open_adapter: FreelanceCloudAdapter,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    connector: ConnectorStandIn,
) -> None:
    outgoing = MessageFactory.attachment(CardFactory.adaptive_card(_card(2)))
    before = copy.deepcopy(outgoing).serialize()

    class Sender(ActivityHandler):
        async def on_message_activity(self, turn_context: TurnContext) -> None:
            assert isinstance(turn_context, ReplyCopyingTurnContext)
            await turn_context.send_activity(outgoing)
            await turn_context.send_activity(outgoing)  # the same object twice, as upstream

    url = await start_bot(open_adapter, Sender())
    body = _message(connector.service_url)
    async with http.post(f"{url}/api/messages", json=body) as response:
        assert response.status == 201

    assert outgoing.serialize() == before  # no conversation, replyToId or id stamped on it
    assert type(outgoing) is Activity
    replies = [c for c in connector.calls if c.operation == "ReplyToActivity"]
    assert len(replies) == 2
    for reply in replies:
        assert reply.match["activity_id"] == body["id"]
        assert reply.json["replyToId"] == body["id"]
        assert reply.json["conversation"]["id"] == body["conversation"]["id"]
        assert reply.json["attachments"][0]["content"] == _card(2)


async def test_concurrent_first_turns_share_one_client() -> None:
    cache = ConnectorClientCache(ConnectorTransport())
    factory = CachingConnectorFactory(
        _ConnectorFactoryImpl(
            "", "scope", "", True, PasswordServiceClientCredentialFactory("", "")
        ),
        cache,
    )
    clients = await asyncio.gather(*(factory.create("http://one/") for _ in range(8)))
    assert len({id(c) for c in clients}) == 1
    assert len(cache) == 1
