"""Fixtures for the bot's HTTP tests: real aiohttp app on 127.0.0.1, real botbuilder adapter and
auth, local Bot Connector and token services (tests/support)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import aiohttp
import pytest
from aiohttp import web
from botbuilder.core import Bot
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor

from bot.adapter import BotAuthConfig, FreelanceCloudAdapter, create_adapter
from bot.http import create_web_app
from tests.support.connector import ConnectorStandIn
from tests.support.openid import OpenIdStandIn

APP_ID = "11111111-2222-3333-4444-555555555555"
APP_PASSWORD = "test-only-password"  # a test value, never a real secret
TENANT_ID = "72f988bf-0000-0000-0000-000000000001"

StartBot = Callable[[FreelanceCloudAdapter, Bot], Awaitable[str]]


@pytest.fixture(scope="session")
def openid() -> Iterator[OpenIdStandIn]:
    """One OpenID/JWKS + token service per session, so botbuilder's process-wide metadata cache
    (keyed by URL) only ever holds this stand-in's single key."""
    with OpenIdStandIn() as standin, pytest.MonkeyPatch.context() as mp:
        # MSAL fetches the outbound token with requests, which trusts only this bundle.
        mp.setenv("REQUESTS_CA_BUNDLE", standin.ca_bundle)
        JwtTokenExtractor.metadataCache.pop(standin.metadata_url, None)
        yield standin
        JwtTokenExtractor.metadataCache.pop(standin.metadata_url, None)


@pytest.fixture
def outbound(openid: OpenIdStandIn) -> Iterator[OpenIdStandIn]:
    """The session's token service, with token failures reset after the test."""
    yield openid
    openid.allow_token_requests()


@pytest.fixture
def connector() -> Iterator[ConnectorStandIn]:
    with ConnectorStandIn() as standin:
        yield standin


@pytest.fixture
def auth_config(openid: OpenIdStandIn) -> BotAuthConfig:
    return BotAuthConfig(
        app_id=APP_ID,
        app_password=APP_PASSWORD,
        openid_metadata_url=openid.metadata_url,
        channel_login_url=openid.login_url,
    )


@pytest.fixture
def auth_adapter(auth_config: BotAuthConfig) -> FreelanceCloudAdapter:
    return create_adapter(auth_config)


@pytest.fixture
def open_adapter() -> FreelanceCloudAdapter:
    """Auth disabled, as in dev mode."""
    return create_adapter(BotAuthConfig())


@pytest.fixture
async def start_bot() -> AsyncIterator[StartBot]:
    """`await start_bot(adapter, bot)` serves create_web_app on 127.0.0.1:<free port> in the
    test's loop and returns the base URL."""
    runners: list[web.AppRunner] = []

    async def start(adapter: FreelanceCloudAdapter, bot: Bot) -> str:
        runner = web.AppRunner(create_web_app(adapter, bot), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        yield session
