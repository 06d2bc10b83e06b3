"""Provisioning throughput against Graph's documented limits, and a naive baseline.

    .venv/bin/python bench/provisioning.py              # N=500 across T=10 teams (~2-3 min)
    .venv/bin/python bench/provisioning.py --n 100 --teams 5 --baseline-n 5   # smoke run

Two processes, everything on 127.0.0.1, stopped at the end by PID:

* the Graph simulator (`python -m graph.simulator`, its own process like Graph is its own
  service; driven through its /_control API) throttling at Graph's documented limits
  (graph/rate_limits.py DOCUMENTED_LIMITS: 4 requests/s per team, Teams per-tenant limits per
  request type, 150 invitations / 5 s, identity resource units and write budgets), answering
  every request after `--latency` (default 150 ms), seeded with T teams, each owned by a
  requester;
* this process: the product's provisioning engine as app.py wires it: the real job table
  (SQLite, a fresh file), the real worker (jobs/worker.py) and step handlers
  (core/provisioning.py), and the real Graph adapter (graph/directory.py on msgraph-sdk over
  HTTP) with the client-side pacer. Only the Bot Connector side is a stub (the welcome post
  and the notices are not Graph calls and not under Graph's limits).

N engagements, approved at once (stored in `provisioning` with their first step queued, as an
approval leaves them), spread round-robin over the T teams. `wall_s` runs from the moment they
are queued until every one is `active`. `bound_s` is the lower bound that the limits imply:
over every limited resource, the units that the run's admitted Graph requests spent there,
divided by the resource's documented rate; the largest of those. `ratio` = wall_s / bound_s.
`duplicates` counts writes that took effect twice (a second invitation for one e-mail, a second
channel with one name, a second member add for one user), from the simulator's recorded
requests.

The naive baseline runs `--baseline-n` engagements (default 20) one at a time, steps in
sequence, without the pacer (a 429 waits for its Retry-After), through the same handlers and
adapter against the same simulator; its time per engagement is also projected to N.

Writes bench/results/provisioning.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.clock import SystemClock  # noqa: E402
from core.config import ProgramConfig  # noqa: E402
from core.errors import Throttled  # noqa: E402
from core.model import Engagement, EngagementState, MessageRef, Notice  # noqa: E402
from core.provisioning import JobHandlers  # noqa: E402
from graph.client import GraphSettings, build_graph_client, close_graph_client  # noqa: E402
from graph.directory import GraphDirectory  # noqa: E402
from graph.rate_limits import (  # noqa: E402
    DOCUMENTED_LIMITS,
    GraphPacer,
    api_path,
    bound_seconds,
    charges,
)
from jobs.backoff import Backoff  # noqa: E402
from jobs.worker import Worker, WorkerConfig  # noqa: E402
from storage.repositories import SqlStorage, open_storage  # noqa: E402
from storage.tables import engagements  # noqa: E402
from tests.support.engagements import queue_approved_engagements  # noqa: E402

TOKEN = "bench-token"
TENANT = "00000000-0000-0000-0000-0000000000b1"
RESULTS = ROOT / "bench" / "results" / "provisioning.json"


class StubNotifier:
    """The Bot Connector side, which is not under Graph's limits: answers at once."""

    def __init__(self) -> None:
        self.welcomes = 0
        self.notices = 0

    async def send_approval_request(self, engagement: Engagement) -> MessageRef:
        return MessageRef("a:approval", f"approval-{engagement.id}")

    async def send_notice(
        self, user_id: str, engagement: Engagement, notice: Notice, detail: str | None = None
    ) -> None:
        self.notices += 1

    # The lifecycle's messages: provisioning never sends them, but the port has them.
    async def send_end_reminder(self, engagement: Engagement) -> MessageRef:
        return MessageRef("a:requester", f"reminder-{engagement.id}")

    async def send_extension_request(self, engagement: Engagement) -> MessageRef:
        return MessageRef("a:approval", f"extension-{engagement.id}")

    async def send_invitation_nudge(self, engagement: Engagement, days_pending: int) -> None:
        self.notices += 1

    async def post_closing_note(self, engagement: Engagement) -> MessageRef:
        return MessageRef(f"{engagement.channel_id};messageid=2", f"closing-{engagement.id}")

    async def post_welcome(self, engagement: Engagement) -> MessageRef:
        self.welcomes += 1
        return MessageRef(f"{engagement.channel_id};messageid=1", f"welcome-{engagement.id}")


class RemoteSimulator:
    """The simulator in its own process, driven through its control API."""

    def __init__(self, process: asyncio.subprocess.Process, base_url: str) -> None:
        self.process = process
        self.base_url = base_url
        self.root = base_url.removesuffix("/v1.0")
        self.http = aiohttp.ClientSession()

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, f"{self.root}/_control/{path}", json=body) as r:
            r.raise_for_status()
            return await r.json()

    async def seed_teams(self, teams: int) -> list[tuple[str, str, str]]:
        """T teams, each owned by its own requester: (team id, team name, owner id)."""
        owners = [str(uuid.uuid4()) for _ in range(teams)]
        team_ids = [str(uuid.uuid4()) for _ in range(teams)]
        await self.control(
            "POST",
            "seed",
            {
                "users": [
                    {"id": o, "display_name": f"Requester {t}", "mail": f"req{t}@contoso.com"}
                    for t, o in enumerate(owners)
                ],
                "teams": [
                    {"id": team_ids[t], "display_name": f"Team {t}", "owners": [owners[t]]}
                    for t in range(teams)
                ],
            },
        )
        return [(team_ids[t], f"Team {t}", owners[t]) for t in range(teams)]

    async def requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.control("GET", "requests")
        return result

    async def duplicates(self) -> int:
        state = await self.control("GET", "state")
        return sum(d["times"] - 1 for d in state["duplicate_writes"])


@contextlib.asynccontextmanager
async def remote_simulator(latency_s: float) -> AsyncIterator[RemoteSimulator]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "graph.simulator",
        "--documented-limits",
        # The load puts ~50 private channels in each team: Teams' cap of 30 per team is not
        # what is measured here.
        "--private-channel-limit",
        "none",
        "--latency",
        str(latency_s),
        "--tenant-id",
        TENANT,
        "--token",
        TOKEN,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 60)
    sim = RemoteSimulator(process, line.decode().strip())
    try:
        yield sim
    finally:
        await sim.http.close()
        process.terminate()  # by PID: the process this function started
        await process.wait()


async def queue_engagements(
    storage: SqlStorage, teams: list[tuple[str, str, str]], n: int, prefix: str
) -> list[int]:
    # Each team's owner requests (channel owners must be team members); the approver only gets
    # notices, which are stubbed here.
    return await queue_approved_engagements(
        storage,
        count=n,
        teams=teams,
        tenant_id=TENANT,
        prefix=prefix,
        approver=(teams[0][2], "Approver"),
        now=SystemClock().now(),
    )


async def count_active(storage: SqlStorage) -> tuple[int, int]:
    """(active, provisioning_failed), with one cheap query (the poll must not load the
    process that it measures)."""
    query = sa.select(engagements.c.state, sa.func.count()).group_by(engagements.c.state)
    async with storage.engine.connect() as connection:
        counts = {state: n for state, n in await connection.execute(query)}
    return (
        counts.get(EngagementState.ACTIVE.value, 0),
        counts.get(EngagementState.PROVISIONING_FAILED.value, 0),
    )


def summarise(requests: list[dict[str, Any]]) -> dict[str, Any]:
    admitted = [r for r in requests if r["status"] != 429]
    seconds, key, spent = bound_seconds(
        charges(r["method"], api_path(r["path"]), r["query"]) for r in admitted
    )
    per_team = {k: v for k, v in spent.items() if k.startswith("team:")}
    return {
        "calls": len(requests),
        "throttled_calls": sum(1 for r in requests if r["status"] == 429),
        "faulted_calls": sum(1 for r in requests if (r["status"] or 0) >= 500),
        "bound_s": round(seconds, 3),
        "bound_resource": "team:<one team>" if key.startswith("team:") else key,
        "units_by_resource": {
            **{k: v for k, v in sorted(spent.items()) if not k.startswith("team:")},
            "team:<max over teams>": max(per_team.values(), default=0),
        },
    }


async def run_engine(args: argparse.Namespace, sim: RemoteSimulator) -> dict[str, Any]:
    teams = await sim.seed_teams(args.teams)
    base_url = sim.base_url
    workdir = Path(tempfile.mkdtemp(prefix="fc-bench-"))
    storage = await open_storage(f"sqlite+aiosqlite:///{workdir / 'engine.db'}")
    pacer = GraphPacer(DOCUMENTED_LIMITS)
    client = build_graph_client(GraphSettings(base_url=base_url, static_token=TOKEN), pacer=pacer)
    clock = SystemClock()
    notifier = StubNotifier()
    handlers = JobHandlers(
        storage, GraphDirectory(client), notifier, clock, ProgramConfig(max_attempts=20)
    )
    worker = Worker(
        storage.jobs,
        handlers,
        clock,
        WorkerConfig(
            concurrency=args.concurrency,
            poll_interval_s=0.05,
            lease_s=60,
            max_attempts=20,
            backoff=Backoff(base_s=1.0, cap_s=30.0),
        ),
    )
    try:
        await queue_engagements(storage, teams, args.n, "eng")
        started = time.monotonic()
        cpu_started = time.process_time()
        worker.start()
        active = failed = 0
        while active + failed < args.n:
            await asyncio.sleep(0.25)
            active, failed = await count_active(storage)
            if time.monotonic() - started > args.timeout:
                raise SystemExit(f"timed out: {active} active, {failed} failed of {args.n}")
        wall = time.monotonic() - started
        cpu = time.process_time() - cpu_started
        await worker.stop()
        result = {
            "n": args.n,
            "teams": args.teams,
            "active": active,
            "failed": failed,
            "wall_s": round(wall, 3),
            "cpu_s": round(cpu, 1),
            **summarise(await sim.requests()),
            "duplicates": await sim.duplicates(),
            "pacer_wait_s_total": round(pacer.waited_s, 1),
            "welcomes": notifier.welcomes,
        }
        result["ratio"] = round(result["wall_s"] / result["bound_s"], 3)
        return result
    finally:
        await close_graph_client(client)
        await storage.close()


async def run_naive(args: argparse.Namespace, sim: RemoteSimulator) -> dict[str, Any]:
    """One engagement at a time, steps in sequence, no pacer; a 429 waits its Retry-After."""
    teams = await sim.seed_teams(args.teams)
    base_url = sim.base_url
    workdir = Path(tempfile.mkdtemp(prefix="fc-bench-naive-"))
    storage = await open_storage(f"sqlite+aiosqlite:///{workdir / 'naive.db'}")
    client = build_graph_client(GraphSettings(base_url=base_url, static_token=TOKEN))
    clock = SystemClock()
    handlers = JobHandlers(
        storage, GraphDirectory(client), StubNotifier(), clock, ProgramConfig(max_attempts=20)
    )
    try:
        ids = await queue_engagements(storage, teams, args.baseline_n, "naive")
        started = time.monotonic()
        for engagement_id in ids:
            while True:
                async with storage.transaction() as tx:
                    current = await tx.engagements.get(engagement_id)
                assert current is not None
                if current.state is not EngagementState.PROVISIONING:
                    break
                try:
                    await handlers.provision(engagement_id)
                except Throttled as throttled:
                    await asyncio.sleep(throttled.retry_after or 1)
        wall = time.monotonic() - started
        per = wall / len(ids)
        summary = summarise(await sim.requests())
        return {
            "n": len(ids),
            "wall_s": round(wall, 3),
            "per_engagement_s": round(per, 3),
            "projected_wall_s_for_n": round(per * args.n, 1),
            "calls": summary["calls"],
            "throttled_calls": summary["throttled_calls"],
            "duplicates": await sim.duplicates(),
        }
    finally:
        await close_graph_client(client)
        await storage.close()


def table(result: dict[str, Any]) -> str:
    base = result["baseline"]
    rows = [
        ("engagements (N)", result["n"], base["n"]),
        ("teams (T)", result["teams"], result["teams"]),
        ("wall time (s)", result["wall_s"], base["wall_s"]),
        ("wall time for N (s)", result["wall_s"], f"{base['projected_wall_s_for_n']} (proj.)"),
        ("lower bound for N (s)", result["bound_s"], ""),
        ("ratio wall / bound", result["ratio"], ""),
        ("Graph calls", result["calls"], base["calls"]),
        ("throttled (429)", result["throttled_calls"], base["throttled_calls"]),
        ("duplicates", result["duplicates"], base["duplicates"]),
    ]
    lines = [f"{'':24} {'engine':>14} {'naive':>20}"]
    lines += [f"{name:24} {engine!s:>14} {naive!s:>20}" for name, engine, naive in rows]
    lines.append(f"binding resource: {result['bound_resource']}")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    async with remote_simulator(args.latency) as sim:
        result = await run_engine(args, sim)
    async with remote_simulator(args.latency) as sim:
        result["baseline"] = await run_naive(args, sim)
    result["speedup_vs_naive"] = round(
        result["baseline"]["projected_wall_s_for_n"] / result["wall_s"], 1
    )
    result["settings"] = {
        "latency_s": args.latency,
        "concurrency": args.concurrency,
        "limits": "graph/rate_limits.py DOCUMENTED_LIMITS",
        "python": platform.python_version(),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--teams", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.150)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--baseline-n", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
