"""The worker: claims due jobs, runs them, and records success, retry or failure.

A job is leased while it runs and the lease is renewed in the background; if the process dies,
the lease expires and another worker (or this one after a restart) picks the job up again.
A worker whose lease was taken over stops its run, and never runs one job twice side by side.
Handlers are idempotent (core.provisioning), so running a step again never makes things twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from core import texts
from core.clock import Clock
from core.errors import (
    DomainError,
    NotYetReplicated,
    PermanentDeliveryError,
    PermanentDirectoryError,
    StaleVersion,
    TransientDeliveryError,
    TransientDirectoryError,
)
from core.log_context import log_scope, new_correlation_id
from core.metrics import Metrics
from core.model import Job
from core.ports import JobStore
from jobs.backoff import Backoff

log = logging.getLogger(__name__)


class JobRunner(Protocol):
    async def run(self, job: Job) -> None: ...

    async def give_up(self, job: Job, reason: str) -> None: ...


@dataclass(frozen=True)
class WorkerConfig:
    concurrency: int = 4
    poll_interval_s: float = 0.5
    lease_s: float = 60.0
    max_attempts: int = 8
    backoff: Backoff = field(default_factory=Backoff)
    # A freshly invited guest can take minutes to reach Teams (platform facts A13): wait
    # longer and more often for that than for other transient errors (10 s ... ~15 min).
    replication_max_attempts: int = 10
    replication_backoff: Backoff = field(default_factory=lambda: Backoff(base_s=10.0, cap_s=300.0))
    worker_id: str = field(default_factory=lambda: f"worker-{uuid.uuid4().hex[:12]}")


def describe_error(exc: BaseException) -> str:
    """A reason safe to show to users and admins: our own errors carry readable messages;
    anything else is named by its type only, because its text may hold internals."""
    if isinstance(exc, TransientDirectoryError | PermanentDirectoryError):
        return exc.message
    if isinstance(exc, DomainError | TransientDeliveryError | PermanentDeliveryError):
        return str(exc)
    return texts.UNEXPECTED_ERROR.format(kind=type(exc).__name__)


def is_permanent(exc: BaseException) -> bool:
    # StaleVersion means a concurrent write won; rereading and retrying is the cure.
    if isinstance(exc, StaleVersion):
        return False
    return isinstance(exc, PermanentDirectoryError | PermanentDeliveryError | DomainError)


class Worker:
    def __init__(
        self,
        store: JobStore,
        runner: JobRunner,
        clock: Clock,
        config: WorkerConfig | None = None,
        *,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics or Metrics()
        self._store = store
        self._runner = runner
        self._clock = clock
        self.config = config or WorkerConfig()
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._stopping = False
        self._in_flight: dict[asyncio.Task[None], Job] = {}
        self._loop_task: asyncio.Task[None] | None = None

    @property
    def worker_id(self) -> str:
        return self.config.worker_id

    def wake(self) -> None:
        """Look for work now instead of at the next poll (called after a turn enqueues)."""
        self._wake.set()

    def start(self) -> None:
        self._stopping = False
        self._loop_task = asyncio.create_task(self._run_forever(), name=self.worker_id)

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Graceful shutdown (SIGTERM): stop claiming; let in-flight jobs finish for up to
        `timeout_s`. Jobs still running then are cancelled and released: queued again, due
        now, lease cleared, so any worker claims them at once instead of waiting for the lease
        to expire. A released step reruns from its start; steps check for their own earlier
        results, so whatever it made before it was cancelled is found, not made again."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
            self._loop_task = None
        if self._in_flight:
            _done, pending = await asyncio.wait(set(self._in_flight), timeout=timeout_s)
            released = [self._in_flight[task] for task in pending]
            for task in pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)
            for job in released:
                await self._release(job)

    async def _release(self, job: Job) -> None:
        now = self._clock.now()
        try:
            await self._store.retry(
                job.id, worker_id=self.worker_id, run_at=now, error=texts.JOB_RELEASED, now=now
            )
        except Exception:  # its lease expires instead
            log.exception("releasing job %s failed", job.id)
        else:
            log.info("job %s (%s) released at shutdown", job.id, job.kind.value)

    async def run_until_idle(self, timeout_s: float = 30.0) -> int:
        """Run due jobs until none is due (for tests and one-shot runs). Returns jobs run."""
        ran = 0
        async with asyncio.timeout(timeout_s):
            while True:
                jobs = await self._claim(self.config.concurrency)
                if not jobs:
                    return ran
                await asyncio.gather(*(self._execute(job) for job in jobs))
                ran += len(jobs)

    async def _run_forever(self) -> None:
        while not self._stopping:
            free = self.config.concurrency - len(self._in_flight)
            claimed: Sequence[Job] = []
            if free > 0:
                try:
                    claimed = await self._claim(free)
                except Exception:  # the database may be briefly unavailable; try again later
                    log.exception("claiming jobs failed")
            running = {job.id for job in self._in_flight.values()}
            for job in claimed:
                if job.id in running:
                    # Our own lease ran out while the job still runs here (its renewal waited
                    # too long for the database) and the claim took it back for this worker.
                    # The lease is ours again; a second run side by side would repeat its
                    # Graph writes, so the running one simply carries on.
                    log.warning("job %s: lease taken back while still running here", job.id)
                    continue
                task = asyncio.create_task(self._execute(job), name=f"job-{job.id}")
                self._in_flight[task] = job
                task.add_done_callback(self._job_done)
            if claimed and len(claimed) == free:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.poll_interval_s)

    def _job_done(self, task: asyncio.Task[None]) -> None:
        job = self._in_flight.pop(task, None)
        self._wake.set()  # a slot is free
        if not task.cancelled() and (error := task.exception()) is not None:
            # Recording the outcome failed (the database went away): the job's lease expires
            # and it runs again; say why here, since nobody awaits this task.
            job_id = job.id if job is not None else "?"
            log.error("job %s: recording its outcome failed", job_id, exc_info=error)

    async def _claim(self, limit: int) -> Sequence[Job]:
        return await self._store.claim(
            worker_id=self.worker_id,
            now=self._clock.now(),
            lease_seconds=self.config.lease_s,
            limit=limit,
        )

    async def _execute(self, job: Job) -> None:
        """One run of `job`, in its own log scope (correlation id), counted and timed."""
        kind = job.kind.value
        started = time.perf_counter()
        outcome = "released"  # cancelled at shutdown, unless recorded otherwise below
        scope = log_scope(
            correlation_id=new_correlation_id("job"),
            job_id=str(job.id),
            job_kind=kind,
            job_attempt=str(job.attempts),
            engagement_id=str(job.engagement_id or ""),
        )
        try:
            with scope:
                outcome = await self._execute_once(job)
        except Exception:
            outcome = "error"  # recording the outcome failed; _job_done logs it
            raise
        finally:
            self._metrics.job_runs.inc(kind, outcome)
            self._metrics.job_seconds.observe(time.perf_counter() - started, kind)

    async def _execute_once(self, job: Job) -> str:
        run = asyncio.create_task(self._runner.run(job), name=f"run-job-{job.id}")
        heartbeat = asyncio.create_task(self._renew_lease(job), name=f"lease-job-{job.id}")
        try:
            await asyncio.wait({run, heartbeat}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await _cancel(run, heartbeat)
            raise
        if not run.done():
            # The heartbeat ended: another worker owns the job now. Stop this run before it
            # writes anything more; the new owner reruns the step, which finds what this one
            # made. Neither success nor failure is ours to record.
            await _cancel(run)
            log.warning("job %s (%s) stopped: its lease was lost", job.id, job.kind.value)
            return "lease_lost"
        await _cancel(heartbeat)
        if run.cancelled():
            raise asyncio.CancelledError
        exc = run.exception()
        if exc is None:
            await self._store.complete(job.id, worker_id=self.worker_id, now=self._clock.now())
            log.info("job %s (%s) succeeded", job.id, job.kind.value)
            return "succeeded"
        if isinstance(exc, Exception):
            return await self._after_failure(job, exc)
        raise exc

    async def _after_failure(self, job: Job, exc: Exception) -> str:
        """Record a retry or the failure; returns the outcome ("retry", "failed", "lease_lost")."""
        reason = describe_error(exc)
        permanent = is_permanent(exc)
        if not permanent and not isinstance(exc, TransientDirectoryError | TransientDeliveryError):
            # Called after the except block has ended: pass the error for its traceback.
            log.error("job %s (%s) raised unexpectedly", job.id, job.kind.value, exc_info=exc)
        replication = isinstance(exc, NotYetReplicated)
        max_attempts = (
            self.config.replication_max_attempts if replication else self.config.max_attempts
        )
        backoff = self.config.replication_backoff if replication else self.config.backoff
        if permanent or job.attempts >= max_attempts:
            if not await self._holds_lease(job):
                # Giving up tells people the work failed; a worker that lost the job must not
                # say so while the new owner may still succeed.
                log.warning("job %s: lease lost before giving up; left to its owner", job.id)
                return "lease_lost"
            if not permanent:
                reason = texts.FAIL_TOO_MANY_ATTEMPTS.format(attempts=job.attempts, error=reason)
            log.warning("job %s (%s) failed for good: %s", job.id, job.kind.value, reason)
            await self._runner.give_up(job, reason)
            await self._store.fail(
                job.id, worker_id=self.worker_id, error=reason, now=self._clock.now()
            )
            return "failed"
        retry_after = getattr(exc, "retry_after", None)
        delay = backoff.delay(job.attempts, retry_after, self._rng)
        now = self._clock.now()
        log.info("job %s (%s) will retry in %.1fs: %s", job.id, job.kind.value, delay, reason)
        await self._store.retry(
            job.id,
            worker_id=self.worker_id,
            run_at=now + timedelta(seconds=delay),
            error=reason,
            now=now,
        )
        return "retry"

    async def _renew_lease(self, job: Job) -> None:
        """Renew the lease every third of its length; return once it is lost: taken by
        another worker, or not renewed for a whole lease length (the database is unreachable,
        so another worker may already have taken it)."""
        loop = asyncio.get_running_loop()
        interval = max(self.config.lease_s / 3, 0.05)
        last_kept = loop.time()
        while True:
            await asyncio.sleep(interval)
            try:
                kept = await self._holds_lease(job)
            except Exception:
                log.exception("renewing the lease of job %s failed", job.id)
                if loop.time() - last_kept >= self.config.lease_s:
                    log.warning("job %s: lease expired while it could not be renewed", job.id)
                    return
                continue
            if not kept:
                log.warning("job %s: lease lost to another worker", job.id)
                return
            last_kept = loop.time()

    async def _holds_lease(self, job: Job) -> bool:
        """Renew the lease; False if another worker holds it now."""
        return await self._store.renew_lease(
            job.id,
            worker_id=self.worker_id,
            now=self._clock.now(),
            lease_seconds=self.config.lease_s,
        )


async def _cancel(*tasks: asyncio.Task[None]) -> None:
    """Cancel `tasks` and wait until they have ended, whatever they raise."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
