"""Teams re-delivers an activity (same id) when a turn is slow: messages and install events are
answered once, also when the copies reach two replicas sharing one PostgreSQL database at the
same moment (and on a single SQLite instance); a turn that failed does not block the
re-delivery that should succeed."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from app import COMPONENTS, build_app
from bot.adapter import APOLOGY_TEXT
from cards import verbs as V
from core import audit_actions as A
from core.model import EngagementState
from settings import Settings
from tests.contract.conftest import _reset_schema, postgres_url  # noqa: F401 (fixture)
from tests.e2e.conftest import ALEX, MARKETING, MEGAN, RunningApp, e2e_settings
from tests.e2e.steps import intake_values, texts_to
from tests.support.activities import (
    conversation_update_bot_added,
    installation_update,
    invoke_action,
    message,
    personal_conversation_id,
)
from tests.support.cards import action_data, card_of, card_text, invoke_card, verbs
from tests.support.connector import ConnectorStandIn


async def start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def replicas(
    connector: ConnectorStandIn, *settings: Settings
) -> AsyncIterator[list[RunningApp]]:
    """One running app per `settings`, in this process, sharing `connector`."""
    apps = [await build_app(one) for one in settings]
    started = [await start(app) for app in apps]
    try:
        async with aiohttp.ClientSession() as http:
            yield [
                RunningApp(url, http, connector, app[COMPONENTS])
                for app, (_runner, url) in zip(apps, started, strict=True)
            ]
    finally:
        for runner, _url in reversed(started):
            await runner.cleanup()


@pytest.fixture
async def two_replicas(
    tmp_path: Path,
    connector: ConnectorStandIn,
    postgres_url: str,  # noqa: F811 (the fixture imported above)
) -> AsyncIterator[tuple[RunningApp, RunningApp]]:
    """Two instances of the app on one PostgreSQL database, as replicas run."""
    await _reset_schema(postgres_url)
    settings = e2e_settings(tmp_path, database_url=postgres_url)
    async with replicas(connector, settings, settings) as (first, second):
        yield first, second


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


@pytest.fixture
async def replicas_one_worker(
    tmp_path: Path,
    connector: ConnectorStandIn,
    postgres_url: str,  # noqa: F811 (the fixture imported above)
) -> AsyncIterator[tuple[RunningApp, RunningApp]]:
    """Two replicas on one PostgreSQL database; only the first runs jobs, so that every Graph
    write reaches one simulator (each dev-mode replica has its own) and can be counted."""
    await _reset_schema(postgres_url)
    settings = e2e_settings(tmp_path, database_url=postgres_url)
    web_only = e2e_settings(tmp_path, database_url=postgres_url, worker_enabled=False)
    async with replicas(connector, settings, web_only) as (first, second):
        yield first, second


async def test_every_activity_of_the_scenario_delivered_three_times_at_once_acts_once(
    replicas_one_worker: tuple[RunningApp, RunningApp],
) -> None:
    """Teams' re-delivery at its worst: every activity of the end-to-end scenario arrives three
    times at the same moment, spread over two replicas. No message, decision, job or Graph
    write happens twice; every copy of a card action still gets its invoke response."""
    a, b = replicas_one_worker
    url, tenant = a.connector.service_url, a.tenant_id

    async def deliver_three_times(activity: dict[str, Any]) -> list[tuple[int, Any]]:
        copies = [copy.deepcopy(activity) for _ in range(3)]
        return list(await asyncio.gather(a.send(copies[0]), b.send(copies[1]), a.send(copies[2])))

    for activity in (
        installation_update(user=ALEX, service_url=url, tenant_id=tenant),
        installation_update(user=MEGAN, service_url=url, tenant_id=tenant),
        conversation_update_bot_added(
            team=MARKETING, user=ALEX, service_url=url, tenant_id=tenant
        ),
        installation_update(user=ALEX, team=MARKETING, service_url=url, tenant_id=tenant),
    ):
        assert all(s in (200, 201) for s, _ in await deliver_three_times(activity))

    ask = message("/request", user=ALEX, service_url=url, tenant_id=tenant)
    await deliver_three_times(ask)
    assert len(replies_to(a, ask)) == 1

    submit = invoke_action(
        V.INTAKE_SUBMIT, intake_values(), user=ALEX, service_url=url, tenant_id=tenant
    )
    responses = await deliver_three_times(submit)
    assert [s for s, _ in responses] == [200, 200, 200]
    # Each copy answers with a preview; the client shows the newest draft's.
    versions = [action_data(invoke_card(body), V.INTAKE_CONFIRM) for _, body in responses]
    newest = max(versions, key=lambda data: int(data[V.DRAFT_VERSION]))
    confirm = invoke_action(V.INTAKE_CONFIRM, newest, user=ALEX, service_url=url, tenant_id=tenant)
    responses = await deliver_three_times(confirm)
    assert [s for s, _ in responses] == [200, 200, 200]
    submitted = {card_text(invoke_card(body)).split("FC-")[1].split()[0] for _, body in responses}
    assert len(submitted) == 1
    engagement_id = int(submitted.pop())

    await a.connector.wait_for_activity(lambda x: V.APPROVE in verbs(card_of(x)), timeout=10)
    approve = invoke_action(
        V.APPROVE, {V.ENGAGEMENT_ID: engagement_id}, user=MEGAN, service_url=url, tenant_id=tenant
    )
    responses = await deliver_three_times(approve)
    assert [s for s, _ in responses] == [200, 200, 200]
    # Each copy's card tells the truth: approved by Megan (the later copies add that nothing
    # was changed by them).
    assert all("Approved by Megan Bowen on" in card_text(invoke_card(b)) for _, b in responses)
    await a.wait_for_state(engagement_id, EngagementState.ACTIVE)
    await a.wait_until(lambda: "is ready" in texts_to(a, MEGAN), what="Megan's ready notice")

    status = message("/status", user=ALEX, service_url=url, tenant_id=tenant)
    await deliver_three_times(status)
    assert len(replies_to(a, status)) == 1
    await a.components.worker.run_until_idle()

    # One engagement, one decision, one run of each job.
    async with a.components.storage.transaction() as tx:
        audit = [r.action for r in await tx.audit.list_for_engagement(engagement_id)]
    assert audit.count(A.ENGAGEMENT_SUBMITTED) == 1
    assert audit.count(A.ENGAGEMENT_APPROVED) == 1
    assert audit.count(A.GRAPH_CHANNEL_CREATED) == 1
    assert audit.count(A.WELCOME_POSTED) == 1
    jobs = await a.components.storage.jobs.list_for_engagement(engagement_id)
    assert Counter(job.kind.value for job in jobs)["route_approval"] == 1
    # Provisioning is one job per step; notices and reminders are one job per recipient/date.
    assert all(job.status.value == "succeeded" for job in jobs if job.kind.value == "provision")
    # update_cards runs once per change of the engagement (a re-render, idempotent), so
    # several of those are expected.
    payloads = Counter(
        (job.kind.value, json.dumps(job.payload, sort_keys=True))
        for job in jobs
        if job.kind.value not in ("provision", "update_cards")
    )
    assert all(count == 1 for count in payloads.values()), payloads
    assert await b.components.storage.jobs.list_for_engagement(engagement_id) == jobs

    # Graph: every write exactly once.
    writes = Counter(
        (r.method, r.path)
        for r in a.simulator.requests
        if r.method in ("POST", "PATCH", "PUT", "DELETE")
    )
    assert writes and all(count == 1 for count in writes.values()), writes
    # The web-only replica only read Graph (intake's pre-flight), never wrote.
    assert {r.method for r in b.simulator.requests} <= {"GET"}

    # Teams: no message twice in any conversation (same conversation, same words).
    sent = Counter(
        (call.path, card_text(card_of(call.json)) if card_of(call.json) else call.json.get("text"))
        for call in a.connector.calls
        if call.method == "POST" and isinstance(call.json, dict) and call.json.get("type")
    )
    assert len(sent) >= 6, sent
    assert all(count == 1 for count in sent.values()), [k for k, n in sent.items() if n > 1]
