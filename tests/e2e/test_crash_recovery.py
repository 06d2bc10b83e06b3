"""Crash test: `python app.py` as a subprocess against a Graph simulator that outlives it,
SIGKILLed at random moments while it provisions many engagements (30 kills), restarted each
time. At the end every engagement is active with exactly one invitation per freelancer, one
channel per engagement and no duplicate membership, checked against the simulator's recorded
requests and its state. One stop in the middle is a SIGTERM, which must leave no job running."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest

from core.clock import SystemClock
from core.config import ProgramConfig
from core.lifecycle import LifecycleService
from core.model import Actor, EngagementState, JobStatus
from graph.dev_seed import (
    ALEX_ID,
    DEV_TENANT_ID,
    ENGINEERING_TEAM_ID,
    MARKETING_TEAM_ID,
    MEGAN_ID,
    NESTOR_ID,
)
from graph.rate_limits import DOCUMENTED_LIMITS
from graph.simulator import GraphSimulator
from storage.repositories import SqlStorage, open_storage
from tests.e2e.test_app_process import ROOT, free_port
from tests.support.engagements import queue_approved_engagements
from tests.support.simulator import running_simulator

KILLS = 30
ENGAGEMENTS = 20
SIGTERM_AT = 15  # the stop with this number is graceful
ALEX = Actor(ALEX_ID, "Alex Wilber")
TEAMS = [(MARKETING_TEAM_ID, "Contoso Marketing"), (ENGINEERING_TEAM_ID, "Contoso Engineering")]


@pytest.fixture
async def sim() -> AsyncIterator[GraphSimulator]:
    options = {"limits": DOCUMENTED_LIMITS, "latency_s": 0.02, "replication_delay_s": 0.3}
    async with running_simulator(**options, seed=5) as simulator:
        yield simulator


async def queue(storage: SqlStorage, count: int = ENGAGEMENTS) -> list[int]:
    return await queue_approved_engagements(
        storage,
        count=count,
        teams=[(team_id, name, ALEX_ID) for team_id, name in TEAMS],
        tenant_id=DEV_TENANT_ID,
        prefix="Crash",
        approver=(MEGAN_ID, "Megan Bowen"),
        now=datetime.now().astimezone(),
    )


async def states(storage: SqlStorage, ids: list[int]) -> list[EngagementState]:
    out = []
    async with storage.transaction() as tx:
        for engagement_id in ids:
            engagement = await tx.engagements.get(engagement_id)
            assert engagement is not None
            out.append(engagement.state)
    return out


async def running_owners(storage: SqlStorage, ids: list[int]) -> set[tuple[int, str | None]]:
    out = set()
    for engagement_id in ids:
        for job in await storage.jobs.list_for_engagement(engagement_id):
            if job.status is JobStatus.RUNNING:
                out.add((job.id, job.lease_owner))
    return out


def app_env(port: int, database_url: str, graph_base_url: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("Microsoft", "GRAPH_", "BOT_"))
    }
    env.update(
        PORT=str(port),
        DATABASE_URL=database_url,
        GRAPH_BASE_URL=graph_base_url,
        GRAPH_TOKEN="crash-test-token",
        ALLOW_UNAUTHENTICATED="true",
        ADMIN_IDS=NESTOR_ID,
        LOG_LEVEL="ERROR",
        WORKER_CONCURRENCY="16",
        WORKER_POLL_INTERVAL_S="0.05",
        JOB_LEASE_S="1",
        JOB_MAX_ATTEMPTS="100",
        JOB_RETRY_BASE_S="0.05",
        JOB_RETRY_MAX_S="0.5",
        JOB_REPLICATION_RETRY_BASE_S="0.05",
        JOB_REPLICATION_MAX_ATTEMPTS="100",
        GRAPH_TIMEOUT_S="5",
    )
    return env


class AppProcess:
    """`python app.py` as a subprocess, logging to a file, started until /healthz answers."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.port = int(env["PORT"])
        self.log_path = log_path

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    async def start(self) -> asyncio.subprocess.Process:
        with self.log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "app.py", cwd=ROOT, env=self.env, stdout=log, stderr=log
            )
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                try:
                    async with http.get(f"http://127.0.0.1:{self.port}/healthz") as response:
                        if response.status == 200:
                            return process
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.02)
        process.kill()
        raise AssertionError("the app did not come up")


async def test_sigkill_at_random_moments_never_duplicates_and_always_finishes(
    tmp_path: Path, sim: GraphSimulator
) -> None:
    assert sim.base_url is not None
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'crash.db'}"
    storage = await open_storage(database_url)
    ids = await queue(storage)
    rng = random.Random(2026)
    app = AppProcess(app_env(free_port(), database_url, sim.base_url), tmp_path / "app.log")
    start, log_tail = app.start, app.log_tail

    kills_during_provisioning = 0
    process: asyncio.subprocess.Process | None = None
    try:
        for stop in range(1, KILLS + 2):
            left_by_killed = await running_owners(storage, ids)
            process = await start()
            await asyncio.sleep(rng.uniform(0.0, 0.4))  # the worker is busy by now
            unfinished = any(s is not EngagementState.ACTIVE for s in await states(storage, ids))
            if stop == SIGTERM_AT:
                process.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(process.wait(), 30) == 0, log_tail()
                # Graceful: every step this process ran finished or was released; the only
                # jobs still leased are ones a killed process left and this one never took.
                assert (await running_owners(storage, ids)) <= left_by_killed
                continue
            process.kill()
            await process.wait()
            kills_during_provisioning += unfinished
        assert kills_during_provisioning >= KILLS

        # The last run provisions what is left and stops gracefully.
        process = await start()
        for _ in range(1200):
            if all(s is EngagementState.ACTIVE for s in await states(storage, ids)):
                break
            await asyncio.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0, log_tail()
    finally:
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()

    async with storage.transaction() as tx:
        engagements = [await tx.engagements.get(i) for i in ids]
    await storage.close()
    assert [e.state if e else None for e in engagements] == [EngagementState.ACTIVE] * len(ids)

    # Exactly once, by the requests Graph received (writes that applied count, whatever the
    # answer) and by Graph's state.
    assert sim.duplicate_writes() == {}
    invited = Counter(i.invited_user_email_address.lower() for i in sim.invitations)
    assert all(invited[f"crash{i}@fabrikam.example"] == 1 for i in range(ENGAGEMENTS))
    for engagement in engagements:
        assert engagement is not None and engagement.channel_id is not None
        assert engagement.guest_user_id is not None
        named = [
            c
            for c in sim.channels(engagement.team_id, include_deleted=True)
            if c.display_name.lower() == engagement.channel_name.lower()
        ]
        assert [c.id for c in named] == [engagement.channel_id]
        team_members = [m.user_id for m in sim.team_members(engagement.team_id)]
        assert team_members.count(engagement.guest_user_id) == 1
        channel_members = sim.channel_members(engagement.team_id, engagement.channel_id)
        assert [m.user_id for m in channel_members].count(engagement.guest_user_id) == 1


OFFBOARDING_KILLS = 10
OFFBOARDED = 12


async def test_sigkill_during_offboarding_resumes_without_duplicates(
    tmp_path: Path, sim: GraphSimulator
) -> None:
    """Provision the engagements (no kills), revoke them all, then SIGKILL the app at random
    moments while it offboards: every engagement ends, each removal and each account change
    reaches Graph once, and nothing the engagements made is left behind."""
    assert sim.base_url is not None
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'offboard.db'}"
    storage = await open_storage(database_url)
    ids = await queue(storage, OFFBOARDED)
    rng = random.Random(611)
    app = AppProcess(app_env(free_port(), database_url, sim.base_url), tmp_path / "app.log")

    process = await app.start()
    try:
        for _ in range(1200):
            if all(s is EngagementState.ACTIVE for s in await states(storage, ids)):
                break
            await asyncio.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0, app.log_tail()
        assert all(s is EngagementState.ACTIVE for s in await states(storage, ids))

        lifecycle = LifecycleService(storage, SystemClock(), ProgramConfig())
        for engagement_id in ids:
            await lifecycle.revoke(engagement_id, ALEX, "Crash test: contract cancelled")

        kills_during_offboarding = 0
        for _ in range(OFFBOARDING_KILLS):
            process = await app.start()
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            unfinished = any(s is not EngagementState.ENDED for s in await states(storage, ids))
            process.kill()
            await process.wait()
            kills_during_offboarding += unfinished
        assert kills_during_offboarding >= OFFBOARDING_KILLS // 2, "the kills came too late"

        process = await app.start()
        for _ in range(1200):
            if all(s is EngagementState.ENDED for s in await states(storage, ids)):
                break
            await asyncio.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0, app.log_tail()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    async with storage.transaction() as tx:
        engagements = [await tx.engagements.get(i) for i in ids]
    await storage.close()
    assert [e.state if e else None for e in engagements] == [EngagementState.ENDED] * len(ids)

    assert sim.duplicate_writes() == {}
    writes = sim.applied_writes()
    for engagement in engagements:
        assert engagement is not None and engagement.channel_id is not None
        guest = engagement.guest_user_id
        assert guest is not None
        assert guest not in {m.user_id for m in sim.team_members(engagement.team_id)}
        channel_members = sim.channel_members(engagement.team_id, engagement.channel_id)
        assert guest not in {m.user_id for m in channel_members}
        user = sim.user(guest)
        assert user is not None and not user.account_enabled
        assert writes.get(("account_enabled", guest, "false")) == 1
