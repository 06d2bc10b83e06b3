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

from core.model import EngagementState, JobStatus
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
TEAMS = [(MARKETING_TEAM_ID, "Contoso Marketing"), (ENGINEERING_TEAM_ID, "Contoso Engineering")]


@pytest.fixture
async def sim() -> AsyncIterator[GraphSimulator]:
    options = {"limits": DOCUMENTED_LIMITS, "latency_s": 0.02, "replication_delay_s": 0.3}
    async with running_simulator(**options, seed=5) as simulator:
        yield simulator


async def queue(storage: SqlStorage) -> list[int]:
    return await queue_approved_engagements(
        storage,
        count=ENGAGEMENTS,
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


async def test_sigkill_at_random_moments_never_duplicates_and_always_finishes(
    tmp_path: Path, sim: GraphSimulator
) -> None:
    assert sim.base_url is not None
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'crash.db'}"
    storage = await open_storage(database_url)
    ids = await queue(storage)
    rng = random.Random(2026)
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("Microsoft", "GRAPH_", "BOT_"))
    }
    env.update(
        PORT=str(port),
        DATABASE_URL=database_url,
        GRAPH_BASE_URL=sim.base_url,
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

    log_path = tmp_path / "app.log"

    def log_tail() -> str:
        return log_path.read_text(errors="replace")[-3000:]

    async def start() -> asyncio.subprocess.Process:
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "app.py", cwd=ROOT, env=env, stdout=log, stderr=log
            )
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                        if response.status == 200:
                            return process
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.02)
        process.kill()
        raise AssertionError("the app did not come up")

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
