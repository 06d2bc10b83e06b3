"""The running app in dev mode (Graph simulator in-process, auth off) on a real port, a Bot
Connector stand-in in its own thread, and helpers to talk to both like Teams would."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from app import COMPONENTS, Components, build_app
from core.model import Engagement, EngagementState
from graph.dev_seed import (
    ALEX_ID,
    DEV_TENANT_ID,
    ISAIAH_ID,
    MARKETING_TEAM_ID,
    MEGAN_ID,
    NESTOR_ID,
)
from graph.simulator import GraphSimulator
from settings import Settings
from tests.support.activities import TestTeam, TestUser, personal_conversation_id
from tests.support.connector import ConnectorStandIn

ALEX = TestUser(aad_id=ALEX_ID, user_id="29:alex", name="Alex Wilber")
MEGAN = TestUser(aad_id=MEGAN_ID, user_id="29:megan", name="Megan Bowen")
ISAIAH = TestUser(aad_id=ISAIAH_ID, user_id="29:isaiah", name="Isaiah Langer")
NESTOR = TestUser(aad_id=NESTOR_ID, user_id="29:nestor", name="Nestor Wilke")
MARKETING = TestTeam(
    team_id="19:marketing-general@thread.tacv2",
    name="Contoso Marketing",
    aad_group_id=MARKETING_TEAM_ID,
)


@dataclass
class RunningApp:
    url: str
    http: aiohttp.ClientSession
    connector: ConnectorStandIn
    components: Components

    @property
    def simulator(self) -> GraphSimulator:
        assert self.components.simulator is not None
        return self.components.simulator

    @property
    def tenant_id(self) -> str:
        return DEV_TENANT_ID

    async def send(self, activity: dict[str, Any]) -> tuple[int, Any]:
        """POST an activity to /api/messages; returns the status and the JSON body (or None)."""
        async with self.http.post(f"{self.url}/api/messages", json=activity) as response:
            text = await response.text()
            body = await response.json(content_type=None) if text else None
            return response.status, body

    def personal_activities(self, user: TestUser) -> list[dict[str, Any]]:
        return self.connector.activities(personal_conversation_id(user))

    async def wait_until(
        self, predicate: Callable[[], Any], within_s: float = 10.0, what: str = "condition"
    ) -> Any:
        deadline = time.monotonic() + within_s
        while True:
            value = predicate()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)

    async def engagement(self, engagement_id: int) -> Engagement:
        return await self.components.service.get(engagement_id)

    async def wait_for_state(
        self, engagement_id: int, state: EngagementState, within_s: float = 15.0
    ) -> Engagement:
        async def reached() -> Engagement | None:
            current = await self.engagement(engagement_id)
            return current if current.state is state else None

        result: Engagement = await self.wait_until(
            reached, within_s, f"FC-{engagement_id} {state}"
        )
        return result


@pytest.fixture
def connector() -> Iterator[ConnectorStandIn]:
    with ConnectorStandIn() as stand_in:
        stand_in.seed_team(MARKETING.team_id, MARKETING.name, aad_group_id=MARKETING.aad_group_id)
        yield stand_in


def e2e_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'fc.db'}",
        "admin_ids": frozenset({NESTOR_ID}),
        "port": 0,
        "worker_poll_interval_s": 0.05,
        "job_retry_base_s": 0.05,
        "job_replication_retry_base_s": 0.1,
        "job_max_attempts": 4,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module (or with indirect parametrisation) to change settings."""
    return {}


@pytest.fixture
async def running_app(
    tmp_path: Path, connector: ConnectorStandIn, settings_overrides: dict[str, Any]
) -> AsyncIterator[RunningApp]:
    app = await build_app(e2e_settings(tmp_path, **settings_overrides))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as http:
        yield RunningApp(f"http://127.0.0.1:{port}", http, connector, app[COMPONENTS])
    await runner.cleanup()
