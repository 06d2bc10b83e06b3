"""Replicas of the app as separate processes (`python app.py`), as production runs them: one
PostgreSQL database, one Graph, one Bot Connector, several processes. Shared by
tests/e2e/test_replicas.py and bench/replicas.py.

Each replica runs in non-dev mode with `GRAPH_BASE_URL` and a static `GRAPH_TOKEN` (a local
Graph simulator that every replica shares) and `ALLOW_UNAUTHENTICATED=true` (the test rig's
activities carry no tokens), on its own free port, logging to a file. Every process started
here is stopped by its PID: SIGTERM, then SIGKILL if it does not exit.

Example::

    async with temporary_database(admin_url) as database_url:
        await upgrade_database(database_url)
        async with ReplicaSet(tmp_path, database_url=database_url,
                              graph_base_url=sim.base_url, graph_token="t",
                              settings={"JOB_LEASE_S": "2"}) as replicas:
            a, b = await replicas.start_many(2)
            ... POST activities to a.url + "/api/messages" ...
            await b.kill()          # SIGKILL, as a crashed node
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import TracebackType

import aiohttp
import asyncpg
from sqlalchemy.engine import make_url

from settings import ENV_NAMES
from storage.db import normalize_database_url

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def postgres_admin_url() -> str:
    """TEST_POSTGRES_URL (the contract suite's variable), else the local server's `test`."""
    return normalize_database_url(os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))


def asyncpg_dsn(url: str) -> str:
    """asyncpg.connect() wants libpq's form, without SQLAlchemy's driver suffix."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def temporary_database(admin_url: str, prefix: str = "fc_replicas") -> AsyncIterator[str]:
    """A new, empty PostgreSQL database next to `admin_url`'s, dropped (with FORCE, so open
    connections of killed replicas do not keep it) when the block ends. Yields its URL."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    connection = await asyncpg.connect(asyncpg_dsn(admin_url), timeout=5)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        connection = await asyncpg.connect(asyncpg_dsn(admin_url), timeout=5)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


def replica_env(
    *,
    port: int,
    database_url: str,
    graph_base_url: str,
    graph_token: str,
    settings: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of one replica: this process's, without any of the app's settings
    (so nothing from the caller's shell leaks in), plus the rig's and then `settings`."""
    env = {key: value for key, value in os.environ.items() if key not in ENV_NAMES.values()}
    env.update(
        PORT=str(port),
        DATABASE_URL=database_url,
        GRAPH_BASE_URL=graph_base_url,
        GRAPH_TOKEN=graph_token,
        ALLOW_UNAUTHENTICATED="true",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(settings or {})
    return env


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (0.0 where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Replica:
    """One `python app.py` process. `kill()` is a crash (SIGKILL), `stop()` a graceful stop
    (SIGTERM, the way an orchestrator stops a pod)."""

    def __init__(
        self, name: str, port: int, process: asyncio.subprocess.Process, log_path: Path
    ) -> None:
        self.name = name
        self.port = port
        self.process = process
        self.log_path = log_path
        self.ready_s = 0.0  # from spawn until /healthz answered

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, chars: int = 3000) -> str:
        return f"--- {self.name} ({self.log_path}) ---\n{self.log_text()[-chars:]}"

    async def kill(self) -> int:
        """SIGKILL (no shutdown code runs: leases stay as they were); returns the exit code."""
        if self.alive:
            self.process.send_signal(signal.SIGKILL)
        return await self.process.wait()

    async def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait (the app drains for up to SHUTDOWN_TIMEOUT_S, 20 s by default);
        SIGKILL if it has not exited within `timeout_s`."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                return await asyncio.wait_for(self.process.wait(), timeout_s)
            except TimeoutError:
                self.process.send_signal(signal.SIGKILL)
        return await self.process.wait()


async def wait_healthy(url: str, process: asyncio.subprocess.Process, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"process {process.pid} exited with {process.returncode}")
            try:
                async with http.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.02)
    raise RuntimeError(f"{url} did not answer /healthz within {within_s} s")


class ReplicaSet:
    """Starts replicas that share one database and one Graph; stops every one still running
    when the `async with` block ends, whatever happened in it."""

    def __init__(
        self,
        log_dir: Path,
        *,
        database_url: str,
        graph_base_url: str,
        graph_token: str,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.log_dir = log_dir
        self.database_url = database_url
        self.graph_base_url = graph_base_url
        self.graph_token = graph_token
        self.settings = dict(settings or {})
        self.replicas: list[Replica] = []

    async def __aenter__(self) -> ReplicaSet:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop_all()

    async def start(
        self,
        name: str | None = None,
        *,
        settings: Mapping[str, str] | None = None,
        ready_within_s: float = 60.0,
    ) -> Replica:
        """Spawn one more replica (with `settings` on top of the set's) and wait until its
        /healthz answers."""
        name = name or f"replica-{len(self.replicas) + 1}"
        port = free_port()
        env = replica_env(
            port=port,
            database_url=self.database_url,
            graph_base_url=self.graph_base_url,
            graph_token=self.graph_token,
            settings={**self.settings, **(settings or {})},
        )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        started = time.monotonic()
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "app.py", cwd=ROOT, env=env, stdout=log, stderr=log
            )
        replica = Replica(name, port, process, log_path)
        self.replicas.append(replica)  # registered first: stopped at the end even if not ready
        try:
            await wait_healthy(replica.url, process, ready_within_s)
        except RuntimeError as problem:
            await replica.kill()
            raise RuntimeError(f"{problem}\n{replica.log_tail()}") from None
        replica.ready_s = time.monotonic() - started
        return replica

    async def start_many(
        self, count: int, *, settings: Mapping[str, str] | None = None
    ) -> list[Replica]:
        """`count` replicas started side by side, as a deployment scales out."""
        first = len(self.replicas)
        names = [f"replica-{first + i + 1}" for i in range(count)]
        return list(await asyncio.gather(*(self.start(n, settings=settings) for n in names)))

    @property
    def alive(self) -> list[Replica]:
        return [replica for replica in self.replicas if replica.alive]

    async def stop_all(self) -> None:
        await asyncio.gather(*(replica.stop() for replica in self.replicas))

    def log_tails(self, chars: int = 3000) -> str:
        return "\n".join(replica.log_tail(chars) for replica in self.replicas)
