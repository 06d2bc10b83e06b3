"""Teams re-delivers an activity (same id) when a turn is slow: messages and install events are
answered once, also when the copies reach two replicas sharing one PostgreSQL database at the
same moment (and on a single SQLite instance); a turn that failed does not block the
re-delivery that should succeed."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from app import COMPONENTS, build_app
from bot.adapter import APOLOGY_TEXT
from tests.contract.conftest import _reset_schema, postgres_url  # noqa: F401 (fixture)
from tests.e2e.conftest import ALEX, RunningApp, e2e_settings
from tests.support.activities import installation_update, message, personal_conversation_id
from tests.support.connector import ConnectorStandIn


async def start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def two_replicas(
    tmp_path: Path,
    connector: ConnectorStandIn,
    postgres_url: str,  # noqa: F811 (the fixture imported above)
) -> AsyncIterator[tuple[RunningApp, RunningApp]]:
    """Two instances of the app on one PostgreSQL database, as replicas run."""
    await _reset_schema(postgres_url)
    settings = e2e_settings(tmp_path, database_url=postgres_url)
    first, second = await build_app(settings), await build_app(settings)
    runner_a, url_a = await start(first)
    runner_b, url_b = await start(second)
    async with aiohttp.ClientSession() as http:
        yield (
            RunningApp(url_a, http, connector, first[COMPONENTS]),
            RunningApp(url_b, http, connector, second[COMPONENTS]),
        )
    await runner_b.cleanup()
    await runner_a.cleanup()


def replies_to(app: RunningApp, activity: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in app.connector.activities() if a.get("replyToId") == activity["id"]]


async def test_a_message_delivered_three_times_at_once_is_answered_once(
    two_replicas: tuple[RunningApp, RunningApp],
) -> None:
    a, b = two_replicas
    activity = message(
        "/help", user=ALEX, service_url=a.connector.service_url, tenant_id=a.tenant_id
    )
    statuses = await asyncio.gather(
        a.send(copy.deepcopy(activity)),
        b.send(copy.deepcopy(activity)),
        a.send(copy.deepcopy(activity)),
    )
    assert all(status in (200, 201) for status, _ in statuses)
    assert len(replies_to(a, activity)) == 1
    # Another message with its own id is answered as usual.
    other = message("/help", user=ALEX, service_url=a.connector.service_url, tenant_id=a.tenant_id)
    await b.send(other)
    assert len(replies_to(a, other)) == 1


async def test_an_install_delivered_twice_greets_once(
    two_replicas: tuple[RunningApp, RunningApp],
) -> None:
    a, b = two_replicas
    activity = installation_update(
        user=ALEX, service_url=a.connector.service_url, tenant_id=a.tenant_id
    )
    await asyncio.gather(a.send(copy.deepcopy(activity)), b.send(copy.deepcopy(activity)))
    greetings = a.connector.activities(personal_conversation_id(ALEX))
    assert len(greetings) == 1


async def test_a_single_sqlite_instance_answers_a_message_delivered_twice_at_once_once(
    running_app: RunningApp,
) -> None:
    app = running_app
    activity = message(
        "/status", user=ALEX, service_url=app.connector.service_url, tenant_id=app.tenant_id
    )
    await asyncio.gather(app.send(copy.deepcopy(activity)), app.send(copy.deepcopy(activity)))
    await app.send(copy.deepcopy(activity))  # and once more, after the first finished
    assert len(replies_to(app, activity)) == 1


async def test_a_turn_that_failed_is_handled_when_teams_delivers_it_again(
    running_app: RunningApp,
) -> None:
    app = running_app
    activity = message(
        "/help", user=ALEX, service_url=app.connector.service_url, tenant_id=app.tenant_id
    )
    app.connector.fail_next("POST", r"/v3/conversations/.*/activities", 400)
    status, _ = await app.send(copy.deepcopy(activity))
    # The help card was refused by the connector; the user got the apology instead.
    assert [reply.get("text") for reply in replies_to(app, activity)] == [APOLOGY_TEXT]
    status, _ = await app.send(copy.deepcopy(activity))
    assert status in (200, 201)
    cards = [reply for reply in replies_to(app, activity) if reply.get("attachments")]
    assert len(cards) == 1


async def test_a_body_over_one_mebibyte_gets_413_and_no_turn(running_app: RunningApp) -> None:
    app = running_app
    activity = message(
        "x" * (1024 * 1024),
        user=ALEX,
        service_url=app.connector.service_url,
        tenant_id=app.tenant_id,
    )
    status, _ = await app.send(activity)
    assert status == 413
    assert replies_to(app, activity) == []
