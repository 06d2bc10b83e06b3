"""Graceful shutdown (SIGTERM -> aiohttp's cleanup -> Worker.stop): steps that do not finish
in time are released, so that the next worker claims them at once instead of waiting for the
lease to expire; and the lease of a long step is renewed while it runs."""

from __future__ import annotations

import asyncio

from core import texts
from core.model import JobStatus
from storage.repositories import SqlStorage
from tests.jobs.test_worker import ScriptedRunner, enqueue, status_of, worker
from tests.support.clock import FakeClock


async def test_stop_releases_a_step_that_does_not_finish_in_time(
    storage: SqlStorage, clock: FakeClock
) -> None:
    job_id = await enqueue(storage)
    runner = ScriptedRunner(block=asyncio.Event())  # never set: the step hangs
    w = worker(storage, runner, clock, concurrency=2, poll_interval_s=0.01, lease_s=300)
    w.start()
    await asyncio.wait_for(runner.started.wait(), 5)
    assert (await status_of(storage, job_id)).status is JobStatus.RUNNING

    await w.stop(timeout_s=0.1)

    job = await status_of(storage, job_id)
    assert job.status is JobStatus.QUEUED
    assert job.lease_owner is None and job.lease_expires_at is None
    assert job.run_at <= clock.now()
    assert job.last_error == texts.JOB_RELEASED
    # Another worker takes it at once, long before the 300 s lease would have expired.
    other = worker(storage, ScriptedRunner(), clock, worker_id="w2")
    claimed = await other._claim(5)
    assert [j.id for j in claimed] == [job_id]


async def test_stop_does_not_release_a_step_that_finished(
    storage: SqlStorage, clock: FakeClock
) -> None:
    job_id = await enqueue(storage)
    runner = ScriptedRunner(block=asyncio.Event())
    w = worker(storage, runner, clock, concurrency=1, poll_interval_s=0.01)
    w.start()
    await asyncio.wait_for(runner.started.wait(), 5)
    stopping = asyncio.create_task(w.stop(timeout_s=5))
    await asyncio.sleep(0.02)
    runner.block.set()  # type: ignore[union-attr]
    await stopping
    job = await status_of(storage, job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert job.last_error is None


async def test_a_long_step_keeps_its_lease(storage: SqlStorage, clock: FakeClock) -> None:
    job_id = await enqueue(storage)
    runner = ScriptedRunner(block=asyncio.Event())
    w = worker(storage, runner, clock, concurrency=1, poll_interval_s=0.01, lease_s=0.3)
    w.start()
    await asyncio.wait_for(runner.started.wait(), 5)
    first = (await status_of(storage, job_id)).lease_expires_at
    assert first is not None
    clock.advance(10)  # the step runs long past its first lease
    renewed = None
    for _ in range(100):
        await asyncio.sleep(0.02)
        renewed = (await status_of(storage, job_id)).lease_expires_at
        if renewed is not None and renewed > first:
            break
    assert renewed is not None and renewed > clock.now()
    other = worker(storage, ScriptedRunner(), clock, worker_id="w2")
    assert await other._claim(5) == []  # not taken over: the lease is live
    runner.block.set()  # type: ignore[union-attr]
    await w.stop(timeout_s=5)
    assert (await status_of(storage, job_id)).status is JobStatus.SUCCEEDED
