"""No secret leaks: the end-to-end scenario runs with production-shaped configuration (inbound
JWT authentication, an outbound Bot Connector token from a token service, a static Graph token,
export signing and metrics tokens), logging everything at DEBUG in the production JSON format,
and then every log line, every activity and card the bot sent, every invoke response and the
metrics page are scanned for the secrets and tokens in play.

The secrets are checked to have been used (Graph accepts only its token; the token service saw
the app password), so a clean scan means they were handled and kept out, not never touched."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor

from app import COMPONENTS, build_app
from cards import verbs as V
from core.log_context import log_handler
from core.model import EngagementState
from graph.dev_seed import DEV_TENANT_ID
from graph.simulator import GraphSimulator
from tests.e2e.conftest import ALEX, MEGAN, NESTOR, RunningApp, e2e_settings
from tests.e2e.steps import click, install_in_team, install_personal, say, submit_valid_request
from tests.support.cards import card_of, verbs, walk
from tests.support.connector import ConnectorStandIn
from tests.support.openid import OpenIdStandIn
from tests.support.simulator import running_simulator

APP_ID = "0c4e5f7a-1b2c-4d3e-8f90-a1b2c3d4e5f6"
APP_PASSWORD = "app-password-Qx7!vN2#pL9$wR4"
GRAPH_TOKEN = "graph-static-token-Zt5Km8Wq1Yr3"
EXPORT_SIGNING_KEY = "export-signing-key-Hd8Jf2Lp6Nv0Bx4Cm7Tg1"
METRICS_TOKEN = "metrics-bearer-token-Rk3Ws9Ey5Ua2Io8Pq6"
# Shaped like the Bot Connector's real token (a JWT), so the generic JWT rule is exercised too.
OUTBOUND_TOKEN = jwt.encode({"aud": "https://api.botframework.com", "n": 1}, "k" * 32)

# Our own loggers must never log a secret, even before the formatter's redaction.
OWN_LOGGERS = ("app", "bot", "cards", "core", "graph", "jobs", "storage", "freelance_connector")
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.")


@dataclass
class AuthenticatedApp(RunningApp):
    openid: OpenIdStandIn = field(default=None)  # type: ignore[assignment]
    graph: GraphSimulator = field(default=None)  # type: ignore[assignment]
    inbound_tokens: list[str] = field(default_factory=list)
    invoke_bodies: list[str] = field(default_factory=list)

    @property
    def simulator(self) -> GraphSimulator:
        return self.graph

    async def send(self, activity: dict[str, Any]) -> tuple[int, Any]:
        token = self.openid.mint_token(APP_ID, activity["serviceUrl"])
        self.inbound_tokens.append(token)
        async with self.http.post(
            f"{self.url}/api/messages",
            json=activity,
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            text = await response.text()
            self.invoke_bodies.append(text)
            return response.status, (json.loads(text) if text else None)


class RawRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Capture:
    lines: io.StringIO
    raw: RawRecords


@pytest.fixture
def capture() -> Iterator[Capture]:
    capture = Capture(io.StringIO(), RawRecords())
    secrets = [APP_PASSWORD, GRAPH_TOKEN, EXPORT_SIGNING_KEY, METRICS_TOKEN]
    handler = log_handler(json_lines=True, secrets=secrets, stream=capture.lines)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.addHandler(capture.raw)
    root.setLevel(logging.DEBUG)
    yield capture
    root.removeHandler(handler)
    root.removeHandler(capture.raw)
    root.setLevel(level)


@pytest.fixture
async def production_app(
    tmp_path: Path, connector: ConnectorStandIn, capture: Capture
) -> AsyncIterator[AuthenticatedApp]:
    with OpenIdStandIn() as openid, pytest.MonkeyPatch.context() as mp:
        mp.setenv("REQUESTS_CA_BUNDLE", openid.ca_bundle)
        openid.set_outbound_token(OUTBOUND_TOKEN)
        async with running_simulator(
            tenant_id=DEV_TENANT_ID, accepted_token=GRAPH_TOKEN
        ) as simulator:
            settings = e2e_settings(
                tmp_path,
                app_id=APP_ID,
                app_password=APP_PASSWORD,
                openid_metadata_url=openid.metadata_url,
                channel_login_url=openid.login_url,
                graph_base_url=simulator.base_url,
                graph_token=GRAPH_TOKEN,
                graph_rate_limit=False,
                export_signing_key=EXPORT_SIGNING_KEY,
                metrics_token=METRICS_TOKEN,
                public_base_url="http://127.0.0.1:9",  # replaced by the real port below
                log_level="DEBUG",
            )
            assert not settings.dev_mode and settings.auth_enabled
            app = await build_app(settings)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            try:
                async with aiohttp.ClientSession() as http:
                    yield AuthenticatedApp(
                        f"http://127.0.0.1:{port}",
                        http,
                        connector,
                        app[COMPONENTS],
                        openid=openid,
                        graph=simulator,
                    )
            finally:
                await runner.cleanup()
                JwtTokenExtractor.metadataCache.pop(openid.metadata_url, None)


async def test_no_secret_or_token_appears_in_any_log_line_card_or_response(
    production_app: AuthenticatedApp, capture: Capture
) -> None:
    app = production_app
    for user in (ALEX, MEGAN, NESTOR):
        await install_personal(app, user)
    await install_in_team(app, ALEX)
    # A Graph failure on the way: its error text reaches logs and the audit, never a token.
    app.simulator.inject_fault("POST", "/invitations", 500)
    engagement_id = await submit_valid_request(app)
    await app.connector.wait_for_activity(lambda a: V.APPROVE in verbs(card_of(a)), timeout=10)
    await click(app, MEGAN, V.APPROVE, {V.ENGAGEMENT_ID: engagement_id})
    await app.wait_for_state(engagement_id, EngagementState.ACTIVE)
    await say(app, ALEX, "/status")
    await say(app, NESTOR, f"/show FC-{engagement_id}")
    export = await say(app, NESTOR, "/export")
    links = [n["url"] for n in walk(export) if n.get("type") == "Action.OpenUrl"]
    assert links
    async with app.http.get(links[0].replace("http://127.0.0.1:9", app.url)) as response:
        assert response.status == 200
    async with app.http.get(
        f"{app.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    ) as response:
        assert response.status == 200
        metrics_page = await response.text()
    # A request with a forged token is refused, and the refusal is logged.
    forged = jwt.encode({"aud": APP_ID}, "not-the-key" * 4)
    async with app.http.post(
        f"{app.url}/api/messages", json={}, headers={"Authorization": f"Bearer {forged}"}
    ) as response:
        assert response.status in (400, 401)

    # The secrets were in play.
    assert set(app.simulator.tokens_seen) == {GRAPH_TOKEN}
    assert any(r.get("client_secret") == APP_PASSWORD for r in app.openid.token_requests)
    assert {c.bearer_token for c in app.connector.calls} == {OUTBOUND_TOKEN}

    secrets = {
        "app password": APP_PASSWORD,
        "Graph token": GRAPH_TOKEN,
        "export signing key": EXPORT_SIGNING_KEY,
        "metrics token": METRICS_TOKEN,
        "outbound token": OUTBOUND_TOKEN,
        "forged token": forged,
        **{f"inbound token {i}": t for i, t in enumerate(app.inbound_tokens)},
    }
    log_text = capture.lines.getvalue()
    assert len(log_text.splitlines()) > 200, "the scenario logged (at DEBUG) too little to scan"
    sent = json.dumps([call.json for call in app.connector.calls])
    places = {
        "log lines": log_text,
        "activities and cards sent": sent,
        "invoke responses": "\n".join(app.invoke_bodies),
        "metrics page": metrics_page,
    }
    for place, text in places.items():
        for name, secret in secrets.items():
            assert secret not in text, f"the {name} appears in the {place}"
        assert not JWT_SHAPE.search(text), f"a JWT appears in the {place}"

    for record in capture.raw.records:
        if record.name.split(".")[0] not in OWN_LOGGERS:
            continue
        message = record.getMessage()
        for name, secret in secrets.items():
            assert secret not in message, f"{record.name} logged the {name}"
