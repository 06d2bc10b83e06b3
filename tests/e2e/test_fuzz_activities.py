"""Hostile input (issue 10): a property-based fuzz test that throws 10,000 generated requests
(tests/support/activity_strategies.py) at the running app over real HTTP on SQLite, and 2,000
more on PostgreSQL, the production database, which refuses what SQLite takes. Engagements in
three states come first (active and provisioned in Graph, waiting for approval, rejected), so
that tampered card actions have real targets. The test proves:

* no answer is a 5xx, and none carries a stack trace;
* no turn fails: the log has no ERROR and no traceback. The one handled exception allowed is
  the Bot Connector not knowing a team that a fuzzed install event names;
* requests that are not usable activities (3,000 on SQLite) get their one right status: 413
  over the size limit, 415 for a wrong content type, 400 for bytes that are not a JSON object,
  invalid UTF-8, NUL characters and lone surrogates, and activities without a type, an http(s)
  serviceUrl or a usable conversation id, or with an unusable activity id. They change nothing
  at all: every table, the Graph simulator's writes and the chats the bot opened are as before;
* hostile activities (7,000 on SQLite: card actions with the bot's verbs and random ones from
  people without rights, engagement ids tampered; unknown invokes and activity types; install
  events for unknown teams; huge and odd Unicode text; fields deleted or of the wrong JSON type)
  are answered 200, 201 or 400. They change no engagement (every column), job or team
  installation, make no Graph write and open no chat. They may leave only what any user's
  message leaves: audit records of refusals (outcome "refused", nothing else), the conversation
  reference of senders the fuzz invented, and on PostgreSQL the redelivery guard's record of
  each message id. The references of the real users (requester, approver, admin) stay as they
  were.

The app runs on its own event loop in a background thread, so hypothesis drives a plain
function: each example is a batch of requests sent concurrently. Examples are derandomized, so
CI sends the same requests every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import traceback
from collections import Counter
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from app import COMPONENTS, build_app
from cards import verbs as V
from core.intake import INTAKE_FIELDS, MAX_FIELD_LENGTH
from core.model import AuditOutcome, EngagementState
from storage.tables import metadata
from tests.e2e.conftest import ALEX, ISAIAH, MARKETING, MEGAN, NESTOR, RunningApp, e2e_settings
from tests.e2e.steps import click, install_in_team, install_personal, submit_valid_request
from tests.support.activity_strategies import (
    HOSTILE_KINDS,
    REJECTED_KINDS,
    ActivityStrategies,
    Case,
    FuzzWorld,
)
from tests.support.cards import card_of, verbs
from tests.support.connector import ConnectorStandIn
from tests.support.postgres import scratch_database

T = TypeVar("T")

# Batches of BATCH requests sent concurrently, one batch per hypothesis example: on SQLite
# 3,000 refused and 7,000 hostile requests, 10,000 in all; on PostgreSQL (the production
# database, which refuses what SQLite takes: NUL characters, ids over 2**31 - 1) 2,000 more.
BATCH = 10
BATCHES = {"sqlite": (300, 700), "postgresql": (50, 150)}  # (refused, hostile)
assert sum(BATCHES["sqlite"]) * BATCH == 10_000

FUZZ_SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    # No "explain" or "target" phase: they re-run examples and add nothing to a pass/fail run.
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)

# Handled, logged with its traceback on purpose: the Bot Connector does not know the team a
# fuzzed install event names (bot/handler.py, _remember_conversation).
EXPECTED_LOGGED_EXCEPTIONS = (("bot.handler", "could not read the team's details"),)
# The Bot Connector stand-in serves from this thread (tests/support/connector.py); its aiohttp
# server logs a request it cannot parse (a URL over 8 KB that a fuzzed team id made) as ERROR.
CONNECTOR_THREAD = "connector"
# POSTs that read Graph (admin group membership), not writes.
GRAPH_READ_POSTS = ("checkMemberGroups", "getMemberGroups", "checkMemberObjects")
# Tables that may change only as described in the module docstring.
AUDIT = "audit_log"
CONVERSATIONS = "user_conversations"
# On PostgreSQL the redelivery guard claims every message's id in this table (replicas share
# it, core/redelivery.py); on SQLite it keeps them in memory, and the table stays as it was.
HANDLED = "handled_activities"
# An insider's Submit or Save for later keeps what they typed as their own draft (issue 5):
# that is the form's purpose, not a change to the program. Its content is checked instead.
DRAFTS = "intake_drafts"


def assert_drafts_bounded(rows: list[tuple[Any, ...]]) -> None:
    """A draft keeps only the form's own fields, as bounded text without control characters
    other than line breaks (hostile values are cleaned before they are stored)."""
    column = list(metadata.tables[DRAFTS].c.keys()).index("form_values")
    for row in rows:
        values = json.loads(row[column])
        assert set(values) <= set(INTAKE_FIELDS), values.keys()
        for value in values.values():
            assert isinstance(value, str) and len(value) <= MAX_FIELD_LENGTH
            assert not any(ch < " " and ch != "\n" for ch in value), value


class LoopThread:
    """An event loop in a daemon thread; `run` executes a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzzed-app")
        self._thread.daemon = True
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class ProblemLog(logging.Handler):
    """Collects ERROR records and records with a traceback, except the expected ones."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.ERROR and not record.exc_info:
            return
        if record.threadName == CONNECTOR_THREAD:
            return  # the stand-in's own server, refusing what the real one refuses too
        message = record.getMessage()
        if any(record.name == n and message.startswith(m) for n, m in EXPECTED_LOGGED_EXCEPTIONS):
            return
        self.records.append(record)

    def take(self) -> list[str]:
        found = [f"{r.name} {r.levelname}: {r.getMessage()[:300]}" for r in self.records]
        for record in self.records:
            if record.exc_info and record.exc_info[1] is not None:
                error = record.exc_info[1]
                where = traceback.extract_tb(error.__traceback__)[-1:]
                at = f" at {where[0].filename}:{where[0].lineno}" if where else ""
                found.append(f"  {type(error).__name__}{at}: {error!r:.300}")
        self.records.clear()
        return found


class Fuzzed:
    """The running app (on its own loop) and what the fuzz sent it."""

    def __init__(self, loop: LoopThread, app: RunningApp, world: FuzzWorld, backend: str) -> None:
        self.backend = backend
        self.refused_batches, self.hostile_batches = BATCHES[backend]
        self.loop = loop
        self.app = app
        self.world = world
        self.strategies = ActivityStrategies(world)
        self.problems = ProblemLog()
        self.sent: Counter[str] = Counter()
        self.statuses: Counter[tuple[str, int]] = Counter()

    async def _post(self, case: Case) -> tuple[int, bytes]:
        headers = {"Content-Type": case.content_type}
        url = f"{self.app.url}/api/messages"
        async with self.app.http.post(url, data=case.body, headers=headers) as response:
            return response.status, await response.read()

    def send(self, cases: list[Case]) -> None:
        """Send one batch concurrently; fail (naming the cases) on any wrong answer and on
        any problem the batch left in the log."""

        async def send_all() -> list[tuple[int, bytes]]:
            return await asyncio.gather(*(self._post(case) for case in cases))

        answers = self.loop.run(send_all())
        wrong: list[str] = []
        for case, (status, body) in zip(cases, answers, strict=True):
            self.sent[case.label] += 1
            self.statuses[(case.label, status)] += 1
            if status not in case.expected() or b"Traceback" in body:
                wrong.append(f"{status} {body[:200]!r} for {case!r}")
        problems = self.problems.take()
        assert not wrong and not problems, "\n".join(wrong + problems)

    def fuzz(self, strategy: st.SearchStrategy[Case], batches: int) -> Counter[tuple[str, int]]:
        """Run `batches` hypothesis examples, each a batch of BATCH cases; fail on the first
        batch with a wrong answer or a problem in the log (hypothesis then shrinks it). Returns
        how often each kind of case got each status; fails if fewer cases were sent."""
        statuses = self.statuses.copy()
        sent = self.sent.total()
        started = time.monotonic()

        @settings(FUZZ_SETTINGS, max_examples=batches)
        @given(st.lists(strategy, min_size=BATCH, max_size=BATCH))
        def batch(cases: list[Case]) -> None:
            self.send(cases)

        batch()
        answered = self.statuses - statuses
        sent = self.sent.total() - sent
        print(
            f"\n{sent} requests in {time.monotonic() - started:.1f} s: {sorted(answered.items())}"
        )
        assert sent >= batches * BATCH
        return answered

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        async def read() -> dict[str, list[tuple[Any, ...]]]:
            tables: dict[str, list[tuple[Any, ...]]] = {}
            async with self.app.components.storage.engine.connect() as connection:
                for table in metadata.sorted_tables:
                    rows = (await connection.execute(sa.select(table))).all()
                    tables[table.name] = sorted((tuple(r) for r in rows), key=repr)
            return tables

        return self.loop.run(read())

    def graph_writes(self) -> list[str]:
        return [
            f"{r.method} {r.path}"
            for r in self.app.simulator.requests
            if r.method != "GET" and not r.path.endswith(GRAPH_READ_POSTS)
        ]

    def outside_effects(self) -> tuple[list[str], int]:
        """Graph writes so far, and conversations the bot opened (proactive messages) other
        than a personal chat opened to hand someone the intake form they asked for in a
        channel or group chat (issue 5's privacy rule: that is the answer to /request)."""
        opened = [
            c
            for c in self.app.connector.conversations
            if c.is_group
            or V.INTAKE_SUBMIT not in verbs(card_of(c.parameters.get("activity") or {}))
        ]
        return self.graph_writes(), len(opened)


# --- the app and its state --------------------------------------------------------------------


async def _start(
    tmp_path: Path, connector: ConnectorStandIn, **settings: Any
) -> tuple[RunningApp, web.AppRunner]:
    app = await build_app(e2e_settings(tmp_path, **settings))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    http = aiohttp.ClientSession()
    return RunningApp(f"http://127.0.0.1:{port}", http, connector, app[COMPONENTS]), runner


async def _engagements_in_three_states(app: RunningApp) -> list[int]:
    """FC-1 active (provisioned in Graph), FC-2 waiting for Megan, FC-3 rejected; returns
    when the worker has nothing left to do but future reminders."""
    await install_personal(app, ALEX)
    await install_personal(app, MEGAN)
    await install_personal(app, NESTOR)
    await install_in_team(app, ALEX)
    active = await submit_valid_request(app)
    pending = await submit_valid_request(
        app, channel_name="Second project", freelancer_email="kim.lee@freelance.example"
    )
    rejected = await submit_valid_request(
        app, channel_name="Third project", freelancer_email="sam.roe@freelance.example"
    )
    await app.wait_until(
        lambda: sum(V.APPROVE in verbs(card_of(a)) for a in app.personal_activities(MEGAN)) >= 3,
        what="three approval cards",
    )
    await click(app, MEGAN, V.APPROVE, {V.ENGAGEMENT_ID: active})
    await click(app, MEGAN, V.REJECT, {V.ENGAGEMENT_ID: rejected, V.REJECT_REASON: "No budget"})
    await app.wait_for_state(active, EngagementState.ACTIVE)
    assert (await app.engagement(pending)).state is EngagementState.PENDING_APPROVAL
    assert (await app.engagement(rejected)).state is EngagementState.REJECTED

    async def worker_idle() -> bool:
        soon = datetime.now(UTC) + timedelta(minutes=10)
        jobs = metadata.tables["jobs"]
        busy = sa.select(sa.func.count()).where(
            sa.or_(
                jobs.c.status == "running",
                sa.and_(jobs.c.status == "queued", jobs.c.run_at < soon),
            )
        )
        async with app.components.storage.engine.connect() as connection:
            return (await connection.execute(busy)).scalar_one() == 0

    await app.wait_until(worker_idle, within_s=20, what="the worker to be idle")
    return [active, pending, rejected]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def fuzzed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fuzzed]:
    backend: str = request.param
    loop = LoopThread()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(loop.close)
        settings: dict[str, Any] = {}
        if backend == "postgresql":
            database = scratch_database("fc_fuzz")
            settings["database_url"] = loop.run(database.__aenter__())
            cleanup.callback(lambda: loop.run(database.__aexit__(None, None, None)))
        connector = cleanup.enter_context(ConnectorStandIn())
        connector.seed_team(MARKETING.team_id, MARKETING.name, aad_group_id=MARKETING.aad_group_id)
        app, runner = loop.run(_start(tmp_path_factory.mktemp("fuzz"), connector, **settings))
        try:
            ids = loop.run(_engagements_in_three_states(app))
            world = FuzzWorld(
                service_url=connector.service_url,
                tenant_id=app.tenant_id,
                engagement_ids=ids,
                insiders=[ALEX, MEGAN, NESTOR],
                outsiders=[ISAIAH],
                installed_team=MARKETING,
                known_ids=frozenset({ALEX.aad_id, MEGAN.aad_id, NESTOR.aad_id}),
            )
            yield Fuzzed(loop, app, world, backend)
        finally:
            loop.run(app.http.close())
            loop.run(runner.cleanup())


@pytest.fixture
def problems(fuzzed: Fuzzed) -> Iterator[ProblemLog]:
    root = logging.getLogger()
    root.addHandler(fuzzed.problems)
    try:
        yield fuzzed.problems
    finally:
        root.removeHandler(fuzzed.problems)


# --- the properties ------------------------------------------------------------------------


def kinds(answered: Counter[tuple[str, int]]) -> Counter[str]:
    """How many cases of each kind were sent (mutated or not)."""
    sent: Counter[str] = Counter()
    for (label, _status), count in answered.items():
        sent[label.removesuffix(" mutated")] += count
    return sent


def test_requests_that_are_not_activities_get_4xx_and_change_nothing(
    fuzzed: Fuzzed, problems: ProblemLog
) -> None:
    before = fuzzed.snapshot()
    effects = fuzzed.outside_effects()

    answered = fuzzed.fuzz(fuzzed.strategies.rejected, fuzzed.refused_batches)

    assert set(kinds(answered)) == set(REJECTED_KINDS)
    # Every kind is exercised more than by chance (the mix shifts whenever a strategy changes).
    assert min(kinds(answered).values()) >= 5, answered
    # Nothing at all changed: every table, Graph, the conversations the bot opened.
    assert fuzzed.snapshot() == before
    assert fuzzed.outside_effects() == effects


def test_hostile_activities_never_fail_and_change_no_engagement(
    fuzzed: Fuzzed, problems: ProblemLog
) -> None:
    before = fuzzed.snapshot()
    effects = fuzzed.outside_effects()

    answered = fuzzed.fuzz(fuzzed.strategies.hostile, fuzzed.hostile_batches)

    assert set(kinds(answered)) == set(HOSTILE_KINDS)
    assert min(kinds(answered).values()) >= fuzzed.hostile_batches // 7, answered
    # Some got through the adapter to the handlers, with and without mutations.
    assert answered[("card action", 200)] and answered[("card action mutated", 200)]
    assert answered[("message", 201)] and answered[("message mutated", 201)]
    after = fuzzed.snapshot()
    # No engagement, job, team installation (...) changed; no Graph write, no new chat.
    may_change = {AUDIT, CONVERSATIONS, DRAFTS}
    may_change |= {HANDLED} if fuzzed.backend == "postgresql" else set()
    for table in before:
        if table not in may_change:
            assert after[table] == before[table], table
    assert_drafts_bounded(after[DRAFTS])
    assert fuzzed.outside_effects() == effects, [
        (c.is_group, card_of(c.parameters.get("activity") or {}))
        for c in fuzzed.app.connector.conversations
    ]
    # Refusals are audited (tampered actions reached their targets); nothing else is.
    assert all(row in after[AUDIT] for row in before[AUDIT])
    new_audit = [row for row in after[AUDIT] if row not in before[AUDIT]]
    outcome = list(metadata.tables[AUDIT].c.keys()).index("outcome")
    assert new_audit
    assert {row[outcome] for row in new_audit} == {AuditOutcome.REFUSED.value}, new_audit
    # The real users' conversation references are untouched; only invented senders are new.
    assert all(row in after[CONVERSATIONS] for row in before[CONVERSATIONS])
    new_senders = {row[0] for row in after[CONVERSATIONS] if row not in before[CONVERSATIONS]}
    assert not new_senders & fuzzed.world.known_ids
