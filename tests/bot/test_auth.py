"""Inbound authentication of POST /api/messages, end to end over HTTP: real botbuilder JWT
validation against a local OpenID/JWKS stand-in, real RS256 tokens, and the reply going out to a
local Bot Connector with a token from a local (TLS) token endpoint."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

import aiohttp
import jwt
import pytest
from botbuilder.core import ActivityHandler, TurnContext
from botbuilder.schema import AdaptiveCardInvokeResponse, AdaptiveCardInvokeValue
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor

from bot.adapter import BotAuthConfig, FreelanceCloudAdapter, create_adapter
from tests.bot.conftest import APP_ID, APP_PASSWORD, TENANT_ID, StartBot
from tests.support.activities import TestUser, invoke_action, message
from tests.support.connector import ConnectorStandIn
from tests.support.openid import OpenIdStandIn

ALICE = TestUser(aad_id="aad-alice", user_id="29:alice-mri", name="Alice")


class EchoBot(ActivityHandler):
    """Echoes messages and answers card actions; records every activity it was handed."""

    def __init__(self) -> None:
        self.handled: list[str] = []

    async def on_turn(self, turn_context: TurnContext) -> None:
        self.handled.append(turn_context.activity.type)
        await super().on_turn(turn_context)

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        await turn_context.send_activity(f"echo: {turn_context.activity.text}")

    async def on_adaptive_card_invoke(
        self, turn_context: TurnContext, invoke_value: AdaptiveCardInvokeValue
    ) -> AdaptiveCardInvokeResponse:
        return AdaptiveCardInvokeResponse(
            status_code=200,
            type="application/vnd.microsoft.card.adaptive",
            value=_card(f"done: {invoke_value.action['verb']}"),
        )


def _card(text: str) -> dict[str, Any]:
    return {
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": [{"type": "TextBlock", "text": text}],
    }


def _message(service_url: str, text: str = "hello bot") -> dict[str, Any]:
    return message(
        text, user=ALICE, service_url=service_url, tenant_id=TENANT_ID, bot_app_id=APP_ID
    )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_valid_token_runs_the_turn_and_the_reply_carries_the_outbound_token(
    auth_adapter: FreelanceCloudAdapter,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    connector: ConnectorStandIn,
    outbound: OpenIdStandIn,
) -> None:
    bot = EchoBot()
    url = await start_bot(auth_adapter, bot)
    service_url = connector.service_url
    token = outbound.mint_token(APP_ID, service_url)

    async with http.post(
        f"{url}/api/messages", json=_message(service_url), headers=_bearer(token)
    ) as response:
        assert response.status == 201

    assert bot.handled == ["message"]
    reply = await connector.wait_for(lambda call: call.operation == "ReplyToActivity")
    assert reply.json["text"] == "echo: hello bot"
    # The reply went out with the token MSAL fetched from the local /adfs authority.
    assert reply.bearer_token == outbound.outbound_token
    grant = outbound.token_requests[-1]
    assert grant["client_id"] == APP_ID
    assert grant["grant_type"] == "client_credentials"
    assert grant["scope"] == "https://api.botframework.com/.default"


async def test_valid_token_on_an_invoke_returns_the_invoke_response(
    auth_adapter: FreelanceCloudAdapter,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    connector: ConnectorStandIn,
    openid: OpenIdStandIn,
) -> None:
    bot = EchoBot()
    url = await start_bot(auth_adapter, bot)
    service_url = connector.service_url
    body = invoke_action(
        "approve",
        {"id": "FC-1"},
        user=ALICE,
        service_url=service_url,
        tenant_id=TENANT_ID,
        bot_app_id=APP_ID,
    )

    async with http.post(
        f"{url}/api/messages", json=body, headers=_bearer(openid.mint_token(APP_ID, service_url))
    ) as response:
        assert response.status == 200
        assert await response.json() == {
            "statusCode": 200,
            "type": "application/vnd.microsoft.card.adaptive",
            "value": _card("done: approve"),
        }
    assert bot.handled == ["invoke"]


HeaderFactory = Callable[[OpenIdStandIn, str], "str | None"]

REJECTED: dict[str, tuple[HeaderFactory, str]] = {
    # case: (Authorization header from (stand-in, service URL), channelId of the activity)
    "wrong audience": (
        lambda o, s: "Bearer " + o.mint_token("99999999-0000-0000-0000-000000000000", s),
        "msteams",
    ),
    "wrong issuer": (
        lambda o, s: "Bearer " + o.mint_token(APP_ID, s, iss="https://evil.example.com"),
        "msteams",
    ),
    "serviceurl claim for another service": (
        lambda o, s: "Bearer " + o.mint_token(APP_ID, "https://smba.trafficmanager.net/amer/"),
        "msteams",
    ),
    "no serviceurl claim": (
        lambda o, s: "Bearer " + o.mint_token(APP_ID, s, extra_claims={"serviceurl": None}),
        "msteams",
    ),
    "expired two hours ago": (
        lambda o, s: "Bearer " + o.mint_token(APP_ID, s, exp_offset=-7200),
        "msteams",
    ),
    "not valid for another hour": (
        lambda o, s: "Bearer " + o.mint_token(APP_ID, s, nbf_offset=3600),
        "msteams",
    ),
    "signed by another key with the same kid": (
        lambda o, s: "Bearer " + o.mint_token(APP_ID, s, key=o.other_key),
        "msteams",
    ),
    "unknown kid": (
        lambda o, s: "Bearer " + o.mint_token(APP_ID, s, kid="unknown-kid"),
        "msteams",
    ),
    "HS256 token (algorithm confusion)": (
        lambda o, s: (
            "Bearer "
            + jwt.encode(
                {"iss": "https://api.botframework.com", "aud": APP_ID, "serviceurl": s},
                "a-shared-secret-of-at-least-32-bytes!",
                algorithm="HS256",
                headers={"kid": o.kid},
            )
        ),
        "msteams",
    ),
    "key not endorsed for the channel": (
        lambda o, s: "Bearer " + o.mint_token(APP_ID, s),
        "slack",
    ),
    "garbage token": (lambda o, s: "Bearer not-a-jwt", "msteams"),
    "empty bearer": (lambda o, s: "Bearer ", "msteams"),
    "missing header": (lambda o, s: None, "msteams"),
    "Basic scheme": (lambda o, s: "Basic dXNlcjpwYXNzd29yZA==", "msteams"),
    "valid token in the wrong scheme": (
        lambda o, s: "Token " + o.mint_token(APP_ID, s),
        "msteams",
    ),
}


@pytest.mark.parametrize("case", list(REJECTED))
async def test_bad_credentials_get_401_and_never_reach_the_bot(
    case: str,
    auth_adapter: FreelanceCloudAdapter,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    connector: ConnectorStandIn,
    openid: OpenIdStandIn,
) -> None:
    make_header, channel_id = REJECTED[case]
    bot = EchoBot()
    url = await start_bot(auth_adapter, bot)
    service_url = connector.service_url
    body = _message(service_url)
    body["channelId"] = channel_id
    header = make_header(openid, service_url)
    headers = {} if header is None else {"Authorization": header}

    async with http.post(f"{url}/api/messages", json=body, headers=headers) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        payload = await response.json()
    assert payload == {
        "error": {"code": "Unauthorized", "message": "The request is not authorized."}
    }
    assert bot.handled == []
    assert connector.calls == []


async def test_a_rejected_request_is_logged_once_with_its_reason_but_never_the_token(
    auth_adapter: FreelanceCloudAdapter,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    connector: ConnectorStandIn,
    openid: OpenIdStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = await start_bot(auth_adapter, EchoBot())
    token = openid.mint_token(APP_ID, connector.service_url, exp_offset=-7200)

    with caplog.at_level(logging.DEBUG):
        async with http.post(
            f"{url}/api/messages", json=_message(connector.service_url), headers=_bearer(token)
        ) as response:
            assert response.status == 401

    rejections = [r for r in caplog.records if "rejected inbound request" in r.getMessage()]
    assert len(rejections) == 1
    assert "ExpiredSignatureError" in rejections[0].getMessage()
    everything = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert token not in everything
    assert token.split(".")[2] not in everything  # not even the signature part
    assert APP_PASSWORD not in everything


async def test_health_endpoint_answers_ok(
    open_adapter: FreelanceCloudAdapter, start_bot: StartBot, http: aiohttp.ClientSession
) -> None:
    url = await start_bot(open_adapter, EchoBot())
    async with http.get(f"{url}/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}


BAD_BODIES: dict[str, tuple[bytes, str, int]] = {
    # case: (raw body, content type, expected status)
    "malformed JSON": (b'{"type": "message", ', "application/json", 400),
    "JSON array": (b'[{"type": "message"}]', "application/json", 400),
    "JSON string": (b'"message"', "application/json", 400),
    "not UTF-8": (b'{"type": "\xff\xfe"}', "application/json", 400),
    "activity without type": (
        b'{"text": "hi", "serviceUrl": "http://x/"}',
        "application/json",
        400,
    ),
    "activity without serviceUrl": (b'{"type": "message", "text": "hi"}', "application/json", 400),
    "wrongly typed field": (
        b'{"type": "message", "serviceUrl": "http://x/", "from": 5}',
        "application/json",
        400,
    ),
    "form body": (b"type=message", "application/x-www-form-urlencoded", 415),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
async def test_bodies_that_are_not_activities_are_rejected_without_a_stack_trace(
    case: str,
    auth_adapter: FreelanceCloudAdapter,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    connector: ConnectorStandIn,
    openid: OpenIdStandIn,
) -> None:
    raw, content_type, status = BAD_BODIES[case]
    bot = EchoBot()
    url = await start_bot(auth_adapter, bot)
    headers = {"Content-Type": content_type, **_bearer(openid.mint_token(APP_ID, "http://x/"))}

    async with http.post(f"{url}/api/messages", data=raw, headers=headers) as response:
        assert response.status == status
        text = await response.text()
    assert "Traceback" not in text
    assert response.content_type == "application/json"
    assert bot.handled == []


@pytest.mark.parametrize("header", [None, "Basic dXNlcjpwYXNz", "Bearer"])
@pytest.mark.parametrize("case", ["malformed JSON", "form body"])
async def test_without_a_bearer_token_a_bad_body_gets_401_not_400_or_415(
    case: str,
    header: str | None,
    auth_adapter: FreelanceCloudAdapter,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
) -> None:
    # Regression: the body was read before the credentials were looked at, so a caller
    # without any token got 400 or 415 instead of 401.
    raw, content_type, _ = BAD_BODIES[case]
    bot = EchoBot()
    url = await start_bot(auth_adapter, bot)
    headers = {"Content-Type": content_type}
    if header is not None:
        headers["Authorization"] = header

    async with http.post(f"{url}/api/messages", data=raw, headers=headers) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert bot.handled == []


async def test_activity_from_a_tenant_the_app_does_not_serve_is_refused_before_the_bot(
    auth_config: BotAuthConfig,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    connector: ConnectorStandIn,
    openid: OpenIdStandIn,
) -> None:
    adapter = create_adapter(auth_config, allowed_tenant_ids=frozenset({TENANT_ID}))
    bot = EchoBot()
    url = await start_bot(adapter, bot)
    service_url = connector.service_url
    headers = _bearer(openid.mint_token(APP_ID, service_url))
    outsider = _message(service_url)
    outsider["channelData"]["tenant"]["id"] = "99999999-0000-0000-0000-00000000dead"
    no_tenant = _message(service_url)
    del no_tenant["channelData"]["tenant"]

    for body in (outsider, no_tenant):
        async with http.post(f"{url}/api/messages", json=body, headers=headers) as response:
            assert response.status == 403
            assert (await response.json())["error"]["code"] == "Forbidden"
    assert bot.handled == []
    assert connector.calls == []
    assert adapter.tenant_refusals == 2

    async with http.post(
        f"{url}/api/messages", json=_message(service_url), headers=headers
    ) as response:
        assert response.status in (200, 201)
    assert bot.handled == ["message"]
    assert adapter.tenant_refusals == 2


async def test_unreachable_signing_keys_give_503_not_401(
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    connector: ConnectorStandIn,
    openid: OpenIdStandIn,
) -> None:
    # A port nobody listens on: botbuilder's metadata fetch fails to connect.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    dead_url = f"http://127.0.0.1:{dead_port}/.well-known/openid-configuration"
    JwtTokenExtractor.metadataCache.pop(dead_url, None)
    adapter = create_adapter(
        BotAuthConfig(app_id=APP_ID, app_password=APP_PASSWORD, openid_metadata_url=dead_url)
    )
    bot = EchoBot()
    url = await start_bot(adapter, bot)
    token = openid.mint_token(APP_ID, connector.service_url)
    try:
        async with http.post(
            f"{url}/api/messages", json=_message(connector.service_url), headers=_bearer(token)
        ) as response:
            assert response.status == 503
    finally:
        JwtTokenExtractor.metadataCache.pop(dead_url, None)
    assert bot.handled == []


async def test_with_auth_disabled_a_stray_authorization_header_is_ignored(
    open_adapter: FreelanceCloudAdapter,
    start_bot: StartBot,
    http: aiohttp.ClientSession,
    connector: ConnectorStandIn,
) -> None:
    bot = EchoBot()
    url = await start_bot(open_adapter, bot)
    async with http.post(
        f"{url}/api/messages",
        json=_message(connector.service_url),
        headers={"Authorization": "Bearer not-a-jwt"},
    ) as response:
        assert response.status == 201
    reply = await connector.wait_for(lambda call: call.operation == "ReplyToActivity")
    assert reply.authorization is None  # auth disabled: no outbound token either
    assert bot.handled == ["message"]
