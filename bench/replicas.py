"""Replicas: the provisioning benchmark and /status turns with 1 and 2 replicas on PostgreSQL.

    .venv/bin/python bench/replicas.py           # N=500 across T=10 teams, 3 rounds of turns
                                                 # (~8 minutes); bench/results/replicas.json
    .venv/bin/python bench/replicas.py --quick   # N=100 across T=5, 1 short round (smoke run)

Every replica is `python app.py` in its own process, as production runs it (the harness is
tests/support/replicas.py, shared with tests/e2e/test_replicas.py): non-dev mode, PostgreSQL
(BENCH_POSTGRES_URL, else TEST_POSTGRES_URL, else the local server; a throwaway database per
run), Graph at GRAPH_BASE_URL with a static token, no inbound auth (ALLOW_UNAUTHENTICATED),
LOG_LEVEL=WARNING. Every process is stopped by its PID at the end. Nothing is pinned to a CPU:
the replicas, PostgreSQL, the Graph simulator and this process (load generator, Bot Connector
stand-in) share the machine's cores. `cpu_cores` says where the CPU went, in cores (CPU seconds
per wall second): each replica, PostgreSQL (every postgres process), the simulator, this
process, `other` (whatever else ran on the machine meanwhile) and `machine` (all of it).

Provisioning (bench/provisioning.py's setup, but through the whole app): the Graph simulator in
its own process at Graph's documented limits with `--latency` per answer, T teams each owned by
a requester; the bot installed in every team and by every requester over HTTP (so the welcome
posts and the notices go to a Bot Connector stand-in). N engagements are then queued as an
approval leaves them (storage/, one transaction) while the replicas run; `wall_s` runs from
that commit until every engagement is active. WORKER_CONCURRENCY 256 (as bench/provisioning.py)
and WORKER_POLL_INTERVAL_S 0.05. Three runs, each with a fresh simulator, database and replicas:
  1          one replica, GRAPH_RATE_LIMIT_SHARE 1.0;
  2          two replicas, share 0.5 each, as docs/deploy.md says to configure two;
  2_share_1  two replicas, share 1.0 each: together they may exceed the limits, and Graph's
             429s (with Retry-After) pace the excess.
`bound_s`, `ratio` and `duplicates` as in bench/provisioning.py; `steps_per_worker` counts the
provisioning jobs each replica ran, `busiest_worker_share_per_team` the share of a team's jobs
that the replica running most of them ran (averaged over teams; 0.5 is an even split).

/status turns (bench/turns.py's `status` target): one database seeded with 20 engagements for
the /status user, two replicas started once. A phase sends "/status" turns at a concurrency for
`--seconds` (after `--warmup`), either all to replica 1 ("1 replica"; replica 2 idles) or round
robin to both ("2 replicas", a load balancer's spread). A turn counts when its response was 2xx
and its reply reached the connector stand-in. Every round runs both replica counts at every
concurrency, the order alternating from round to round; throughput is the median over rounds.
On PostgreSQL every message is also claimed in the database (handled_activities, so that a
re-delivery to another replica is turned away): one write per turn that SQLite does not pay.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.provisioning import (  # noqa: E402
    TENANT,
    TOKEN,
    RemoteSimulator,
    count_active,
    remote_simulator,
    summarise,
)
from bench.turns import Connector, seed_database, teams_message  # noqa: E402
from core.clock import SystemClock  # noqa: E402
from core.model import JobKind  # noqa: E402
from storage.migrate import upgrade_database  # noqa: E402
from storage.repositories import SqlStorage, open_storage  # noqa: E402
from storage.tables import engagements, jobs  # noqa: E402
from tests.support.activities import (  # noqa: E402
    TestTeam,
    TestUser,
    conversation_update_bot_added,
    installation_update,
)
from tests.support.connector import ConnectorStandIn  # noqa: E402
from tests.support.engagements import queue_approved_engagements  # noqa: E402
from tests.support.replicas import (  # noqa: E402
    Replica,
    ReplicaSet,
    postgres_admin_url,
    process_cpu_seconds,
    temporary_database,
)

RESULTS = ROOT / "bench" / "results" / "replicas.json"
REPLY_TIMEOUT_S = 10.0


# --- machine ---------------------------------------------------------------------------------


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs together, from /proc/stat ((0, 0) without /proc)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except OSError:
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def postgres_cpu_seconds() -> float:
    """CPU seconds of PostgreSQL on this machine: every live postgres process, plus what the
    ones that exited (backends of closed connections) left in their parent's children times."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "comm").read_text().startswith("postgres"):
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    return total / ticks


class CpuMeter:
    """Where the CPU went during a window, in cores (CPU seconds per wall second): each
    replica, PostgreSQL (all its processes, so also other users' if any), the Graph
    simulator, this process (load generator, connector stand-in, polling) and the whole machine
    (its busy share times the number of CPUs)."""

    def __init__(self, replicas: Sequence[Replica], simulator_pid: int) -> None:
        self.replicas = list(replicas)
        self.simulator_pid = simulator_pid
        self._start: tuple[float, list[float], float, float, float, tuple[int, int]] | None
        self._start = None

    def _sample(self) -> tuple[float, list[float], float, float, float, tuple[int, int]]:
        return (
            time.monotonic(),
            [replica.cpu_seconds() for replica in self.replicas],
            postgres_cpu_seconds(),
            process_cpu_seconds(self.simulator_pid),
            time.process_time(),
            machine_ticks(),
        )

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> dict[str, Any]:
        assert self._start is not None, "start() first"
        wall, replicas, postgres, simulator, own, ticks = self._start
        now, replicas_now, postgres_now, simulator_now, own_now, ticks_now = self._sample()
        elapsed = now - wall
        total = ticks_now[1] - ticks[1]
        busy = (ticks_now[0] - ticks[0]) / total if total else 0.0
        parts: dict[str, Any] = {
            "replicas": [
                round((after - before) / elapsed, 2)
                for before, after in zip(replicas, replicas_now, strict=True)
            ],
            "postgres": round((postgres_now - postgres) / elapsed, 2),
            "simulator": round((simulator_now - simulator) / elapsed, 2),
            "bench": round((own_now - own) / elapsed, 2),
            "machine": round(busy * (os.cpu_count() or 1), 2),
        }
        ours = sum(parts["replicas"]) + parts["postgres"] + parts["simulator"] + parts["bench"]
        # Anything else running on the machine meanwhile (another user's tests, say).
        parts["other"] = round(max(0.0, parts["machine"] - ours), 2)
        return parts


def postgres_url() -> str:
    return os.environ.get("BENCH_POSTGRES_URL") or postgres_admin_url()


# --- provisioning ----------------------------------------------------------------------------


# (name, replicas, GRAPH_RATE_LIMIT_SHARE of each): as docs/deploy.md says to configure one and
# two replicas, and two replicas that each pace at the whole tenant's limits (so together they
# can exceed them and meet Graph's 429s), to show what the static share costs.
PROVISIONING_RUNS = (("1", 1, 1.0), ("2", 2, 0.5), ("2_share_1", 2, 1.0))


def replica_settings(share: float, concurrency: int) -> dict[str, str]:
    return {
        "WORKER_CONCURRENCY": str(concurrency),
        "WORKER_POLL_INTERVAL_S": "0.05",
        "GRAPH_RATE_LIMIT_SHARE": str(share),
        "JOB_MAX_ATTEMPTS": "20",
        "JOB_RETRY_BASE_S": "1",
        "JOB_RETRY_MAX_S": "30",
    }


async def install(
    http: aiohttp.ClientSession,
    replica: Replica,
    connector: ConnectorStandIn,
    teams: Sequence[tuple[str, str, str]],
) -> None:
    """The bot added to every team by its owner, and installed by every owner (requesters; the
    first is also the approver) in their personal scope, over HTTP like Teams does."""
    url = connector.service_url
    activities: list[dict[str, Any]] = []
    for number, (team_id, name, owner) in enumerate(teams):
        thread = f"19:bench-team-{number}@thread.tacv2"
        connector.seed_team(thread, name, aad_group_id=team_id)
        team = TestTeam(team_id=thread, name=name, aad_group_id=team_id)
        user = TestUser(aad_id=owner, user_id=f"29:bench-owner-{number}", name=f"Owner {number}")
        activities += [
            conversation_update_bot_added(team=team, user=user, service_url=url, tenant_id=TENANT),
            installation_update(user=user, team=team, service_url=url, tenant_id=TENANT),
        ]
    for number, (_team_id, _name, owner) in enumerate(teams):
        user = TestUser(aad_id=owner, user_id=f"29:bench-owner-{number}", name=f"Owner {number}")
        activities.append(installation_update(user=user, service_url=url, tenant_id=TENANT))
    for activity in activities:  # in order: team first, then the personal chat
        async with http.post(f"{replica.url}/api/messages", json=activity) as response:
            await response.read()
            if response.status not in (200, 201):
                raise RuntimeError(f"install answered {response.status}")


async def run_provisioning(
    args: argparse.Namespace, name: str, replicas: int, share: float
) -> dict[str, Any]:
    """One provisioning run: a fresh simulator, database, connector and `replicas` replicas."""
    async with (
        remote_simulator(args.latency) as sim,
        temporary_database(postgres_url(), prefix="fc_bench_replicas") as database_url,
    ):
        await upgrade_database(database_url)
        teams = await sim.seed_teams(args.teams)
        storage = await open_storage(database_url, migrate=False)
        connector = ConnectorStandIn()
        connector.start()
        workdir = Path(args.logs) / f"provisioning-{name}"
        try:
            async with (
                ReplicaSet(
                    workdir,
                    database_url=database_url,
                    graph_base_url=sim.base_url,
                    graph_token=TOKEN,
                    settings=replica_settings(share, args.concurrency),
                ) as replica_set,
                aiohttp.ClientSession() as http,
            ):
                started = await replica_set.start_many(replicas)
                await install(http, started[0], connector, teams)
                result = await provision(args, sim, storage, started, teams)
                result["graph_rate_limit_share"] = share
                result["welcomes"] = sum(1 for c in connector.conversations if c.channel_id)
                return result
        finally:
            connector.stop()
            await storage.close()


async def provision(
    args: argparse.Namespace,
    sim: RemoteSimulator,
    storage: SqlStorage,
    replicas: list[Replica],
    teams: Sequence[tuple[str, str, str]],
) -> dict[str, Any]:
    meter = CpuMeter(replicas, sim.process.pid)
    meter.start()
    await queue_approved_engagements(
        storage,
        count=args.n,
        teams=teams,
        tenant_id=TENANT,
        prefix="rep",
        approver=(teams[0][2], "Approver"),
        now=SystemClock().now(),
    )
    started = time.monotonic()
    active = failed = 0
    while active + failed < args.n:
        await asyncio.sleep(0.25)
        active, failed = await count_active(storage)
        if any(not replica.alive for replica in replicas):
            raise SystemExit("a replica died:\n" + "\n".join(r.log_tail() for r in replicas))
        if time.monotonic() - started > args.timeout:
            raise SystemExit(f"timed out: {active} active, {failed} failed of {args.n}")
    wall = time.monotonic() - started
    result: dict[str, Any] = {
        "replicas": len(replicas),
        "n": args.n,
        "teams": args.teams,
        "active": active,
        "failed": failed,
        "wall_s": round(wall, 3),
        "engagements_per_s": round(args.n / wall, 2),
        "cpu_cores": meter.stop(),
        **await job_split(storage),
        **summarise(await sim.requests()),
        "duplicates": await sim.duplicates(),
    }
    result["ratio"] = round(result["wall_s"] / result["bound_s"], 3)
    cpu = result["cpu_cores"]
    # What one engagement cost, whatever else ran on the machine.
    result["cpu_s_per_engagement"] = {
        "replicas": round(sum(cpu["replicas"]) * wall / args.n, 3),
        "postgres": round(cpu["postgres"] * wall / args.n, 3),
    }
    return result


async def job_split(storage: SqlStorage) -> dict[str, Any]:
    """How the provisioning steps were spread over the replicas' workers: in all, and per team
    (the share of a team's steps that its busiest worker ran, averaged over the teams)."""
    query = (
        sa.select(engagements.c.team_id, jobs.c.lease_owner, sa.func.count())
        .select_from(jobs.join(engagements, engagements.c.id == jobs.c.engagement_id))
        .where(jobs.c.kind == JobKind.PROVISION.value)
        .group_by(engagements.c.team_id, jobs.c.lease_owner)
    )
    async with storage.engine.connect() as connection:
        rows = [tuple(row) for row in await connection.execute(query)]
    per_worker: dict[str, int] = {}
    per_team: dict[str, list[int]] = {}
    for team_id, owner, count in rows:
        per_worker[str(owner)] = per_worker.get(str(owner), 0) + int(count)
        per_team.setdefault(str(team_id), []).append(int(count))
    busiest = [max(counts) / sum(counts) for counts in per_team.values()]
    return {
        "steps_per_worker": sorted(per_worker.values(), reverse=True),
        "busiest_worker_share_per_team": round(statistics.mean(busiest), 2) if busiest else 0,
    }


# --- /status turns ---------------------------------------------------------------------------


async def status_phase(
    http: aiohttp.ClientSession,
    connector: Connector,
    replicas: Sequence[Replica],
    concurrency: int,
    warmup_s: float,
    measure_s: float,
    meter: CpuMeter,
) -> dict[str, Any]:
    """`concurrency` clients sending /status for warmup + measure seconds, round robin over
    `replicas`; figures over the measured part (`meter` measures all replicas, busy or not)."""
    latencies: list[float] = []
    counts = {"turns": 0, "errors": 0}
    measuring = False
    stop_at = time.monotonic() + warmup_s + measure_s
    sent = 0

    async def one_turn() -> None:
        nonlocal sent
        replica = replicas[sent % len(replicas)]
        sent += 1
        activity_id = f"status-{uuid.uuid4().hex}"
        replied: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        connector.waiting[activity_id] = replied
        body = teams_message("status", activity_id, connector.service_url)
        counted = measuring
        begun = time.perf_counter()
        try:
            async with http.post(f"{replica.url}/api/messages", json=body) as response:
                await response.read()
                status_ok = 200 <= response.status < 300
            await asyncio.wait_for(replied, REPLY_TIMEOUT_S)
            ok = status_ok
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        finally:
            connector.waiting.pop(activity_id, None)
        if counted and measuring:
            if ok:
                counts["turns"] += 1
                latencies.append((time.perf_counter() - begun) * 1000)
            else:
                counts["errors"] += 1

    async def client() -> None:
        while time.monotonic() < stop_at:
            await one_turn()

    async def start_measuring() -> float:
        nonlocal measuring
        await asyncio.sleep(warmup_s)
        measuring = True
        meter.start()
        return time.monotonic()

    switch = asyncio.ensure_future(start_measuring())
    await asyncio.gather(*(client() for _ in range(concurrency)))
    measure_start = await switch
    # Turns started before the deadline have all finished: count the wall time until now.
    elapsed = time.monotonic() - measure_start
    cpu = meter.stop()
    measuring = False
    return {
        "throughput": counts["turns"] / elapsed if elapsed else 0.0,
        "turns": counts["turns"],
        "errors": counts["errors"],
        "latencies_ms": latencies,
        "cpu_cores": cpu,
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


async def run_status(args: argparse.Namespace) -> dict[str, Any]:
    concurrencies = [int(c) for c in args.status_concurrency.split(",")]
    phases: list[dict[str, Any]] = []
    connector = Connector()
    async with (
        remote_simulator(0.0) as sim,  # /status calls no Graph; the replicas need an endpoint
        temporary_database(postgres_url(), prefix="fc_bench_status") as database_url,
    ):
        await seed_database(database_url)
        await connector.start()
        try:
            async with ReplicaSet(
                Path(args.logs) / "status",
                database_url=database_url,
                graph_base_url=sim.base_url,
                graph_token=TOKEN,
            ) as replica_set:
                both = await replica_set.start_many(2)
                meter = CpuMeter(both, sim.process.pid)
                limit = aiohttp.TCPConnector(limit=max(concurrencies) * 2)
                timeout = aiohttp.ClientTimeout(total=REPLY_TIMEOUT_S)
                async with aiohttp.ClientSession(connector=limit, timeout=timeout) as http:
                    for replica in both:  # untimed: imports, caches, first connections
                        await status_phase(http, connector, [replica], 1, 0.0, 0.3, meter)
                    for round_no in range(1, args.rounds + 1):
                        for concurrency in concurrencies:
                            order = [1, 2] if round_no % 2 else [2, 1]
                            for count in order:
                                phase = await status_phase(
                                    http,
                                    connector,
                                    both[:count],
                                    concurrency,
                                    args.warmup,
                                    args.seconds,
                                    meter,
                                )
                                phase.update(
                                    round=round_no, concurrency=concurrency, replicas=count
                                )
                                phases.append(phase)
                                print(
                                    f"/status round {round_no} conc {concurrency:>2} "
                                    f"replicas {count}: {phase['throughput']:7.1f} turns/s  "
                                    f"errors {phase['errors']}  cpu {phase['cpu_cores']}",
                                    flush=True,
                                )
        finally:
            await connector.stop()
    return summarise_status(phases, concurrencies)


def summarise_status(phases: list[dict[str, Any]], concurrencies: list[int]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for concurrency in concurrencies:
        block: dict[str, Any] = {}
        for count in (1, 2):
            mine = [
                p for p in phases if p["concurrency"] == concurrency and p["replicas"] == count
            ]
            latencies = [x for p in mine for x in p["latencies_ms"]]
            block[str(count)] = {
                "throughput": round(statistics.median(p["throughput"] for p in mine), 1),
                "throughput_per_round": [round(p["throughput"], 1) for p in mine],
                "p50_ms": round(percentile(latencies, 50), 2),
                "p99_ms": round(percentile(latencies, 99), 2),
                "turns": sum(p["turns"] for p in mine),
                "errors": sum(p["errors"] for p in mine),
                "cpu_cores": median_cpu([p["cpu_cores"] for p in mine]),
                # What one turn cost, whatever else ran on the machine (medians over rounds).
                "cpu_ms_per_turn": {
                    part: round(
                        statistics.median(
                            1000 * cores(p["cpu_cores"][part]) / p["throughput"] for p in mine
                        ),
                        2,
                    )
                    for part in ("replicas", "postgres", "bench")
                },
            }
        block["scaling"] = round(block["2"]["throughput"] / block["1"]["throughput"], 2)
        summary[str(concurrency)] = block
    return summary


def cores(value: float | list[float]) -> float:
    return sum(value) if isinstance(value, list) else value


def median_cpu(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Per part, the median over phases of CpuMeter figures."""
    replicas = len(samples[0]["replicas"])
    return {
        "replicas": [
            round(statistics.median(s["replicas"][i] for s in samples), 2) for i in range(replicas)
        ],
        **{
            part: round(statistics.median(s[part] for s in samples), 2)
            for part in ("postgres", "simulator", "bench", "machine", "other")
        },
    }


# --- report ----------------------------------------------------------------------------------


def cpu_text(cpu: dict[str, Any]) -> str:
    replicas = "+".join(f"{x:.2f}" for x in cpu["replicas"])
    return (
        f"{replicas:>9} {cpu['postgres']:>5.2f} {cpu['simulator']:>5.2f} {cpu['bench']:>5.2f} "
        f"{cpu['other']:>5.2f} {cpu['machine']:>5.2f}"
    )


CPU_HEADER = f"{'replicas':>9} {'pg':>5} {'graph':>5} {'bench':>5} {'other':>5} {'all':>5}"


def print_table(result: dict[str, Any]) -> None:
    runs = result["provisioning"]
    first = runs["1"]
    print(
        f"\nprovisioning: N={first['n']} across T={first['teams']} teams, "
        f"{result['settings']['latency_s'] * 1000:.0f} ms Graph latency, documented limits; "
        "CPU in cores"
    )
    header = (
        f"{'run':<10} {'share':>5} {'wall s':>7} {'eng/s':>6} {'bound s':>7} {'ratio':>5} "
        f"{'429':>4} {'dups':>4} {'steps/worker':>12} {'busiest':>7} {'cpu s/eng':>9} | "
        f"{CPU_HEADER}"
    )
    print(header)
    print("-" * len(header))
    for name, _replicas, _share in PROVISIONING_RUNS:
        run = runs[name]
        steps = "/".join(str(x) for x in run["steps_per_worker"])
        print(
            f"{name:<10} {run['graph_rate_limit_share']:>5.2f} {run['wall_s']:>7.1f} "
            f"{run['engagements_per_s']:>6.2f} {run['bound_s']:>7.1f} {run['ratio']:>5.2f} "
            f"{run['throttled_calls']:>4} {run['duplicates']:>4} {steps:>12} "
            f"{run['busiest_worker_share_per_team']:>7.2f} "
            f"{run['cpu_s_per_engagement']['replicas']:>9.3f} | {cpu_text(run['cpu_cores'])}"
        )
    print(f"throughput 2 replicas / 1 replica: {runs['scaling']}x")
    print("\n/status turns; CPU in cores")
    header = (
        f"{'conc':>4} {'replicas':>8} {'turns/s':>8} {'per round':<18} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'err':>4} {'cpu ms/turn':>11} | {CPU_HEADER}"
    )
    print(header)
    print("-" * len(header))
    for concurrency, block in result["status"].items():
        for count in ("1", "2"):
            row = block[count]
            per_round = ", ".join(f"{x:.0f}" for x in row["throughput_per_round"])
            print(
                f"{concurrency:>4} {count:>8} {row['throughput']:>8.1f} {per_round:<18} "
                f"{row['p50_ms']:>7.1f} {row['p99_ms']:>7.1f} {row['errors']:>4} "
                f"{row['cpu_ms_per_turn']['replicas']:>11.2f} | {cpu_text(row['cpu_cores'])}"
            )
        print(f"{'':>4} throughput 2 replicas / 1 replica: {block['scaling']}x")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()
    provisioning: dict[str, Any] = {}
    for name, replicas, share in PROVISIONING_RUNS:
        print(f"provisioning: {replicas} replica(s), share {share} ...", flush=True)
        run = provisioning[name] = await run_provisioning(args, name, replicas, share)
        print(
            f"  {run['wall_s']:.1f} s, {run['engagements_per_s']:.2f} engagements/s, "
            f"ratio {run['ratio']}, 429s {run['throttled_calls']}, "
            f"steps per worker {run['steps_per_worker']}, cpu {run['cpu_cores']}",
            flush=True,
        )
    provisioning["scaling"] = round(provisioning["1"]["wall_s"] / provisioning["2"]["wall_s"], 2)
    status = await run_status(args)
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in load_before],
        },
        "settings": {
            "n": args.n,
            "teams": args.teams,
            "latency_s": args.latency,
            "worker_concurrency": args.concurrency,
            "rounds": args.rounds,
            "warmup_s": args.warmup,
            "measure_s": args.seconds,
            "status_concurrency": args.status_concurrency,
            "database": "PostgreSQL (a throwaway database per run)",
        },
        "provisioning": provisioning,
        "status": status,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--teams", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.150)
    parser.add_argument("--concurrency", type=int, default=256, help="WORKER_CONCURRENCY")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="measured time per phase")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured time per phase")
    parser.add_argument("--status-concurrency", default="8,32")
    parser.add_argument("--logs", default=str(Path("/tmp") / "fc-bench-replicas"))
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--quick", action="store_true", help="N=100, T=5, 1 round of 1.5 s phases")
    args = parser.parse_args()
    if args.quick:
        args.n, args.teams = 100, 5
        args.rounds, args.seconds, args.warmup = 1, 1.5, 0.5
    result = asyncio.run(main_async(args))
    print_table(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    errors = sum(block[c]["errors"] for block in result["status"].values() for c in ("1", "2"))
    duplicates = sum(result["provisioning"][name]["duplicates"] for name, *_ in PROVISIONING_RUNS)
    raise SystemExit(1 if errors or duplicates else 0)


if __name__ == "__main__":
    main()
