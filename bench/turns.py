"""Turn throughput and latency: the product against a bare botbuilder echo bot, side by side.

    .venv/bin/python bench/turns.py            # ~3 minutes; table on stdout,
                                              # bench/results/turns.json
    .venv/bin/python bench/turns.py --quick    # one round, short phases (smoke run)

Processes (all on 127.0.0.1, all stopped at the end, by PID):

* the product: `python app.py` in dev mode (auth off, SQLite, Graph simulator) with PORT,
  DATABASE_URL (a fresh file, seeded beforehand with 20 engagements for the /status user
  through storage/) and LOG_LEVEL=WARNING;
* the reference: bench/echo_bot.py, a bare botbuilder CloudAdapter echo bot (auth off,
  unpatched: it imports nothing from the project);
* this process: the load generator and a Bot Connector stand-in on one event loop.

With two or more CPUs the bots are pinned to CPU 0 and this process to the others, so each bot
gets one core to itself (only one bot is loaded at a time; the other idles).

Targets: `help` (the product answering "/help"), `status` ("/status" from the user with 20
engagements) and `echo` (the echo bot answering "hello"). Every round runs every concurrency
(1, 8, 32) and, within it, every target for the same time, the target order rotating from round
to round. A turn counts only when its HTTP response was 2xx *and* its reply (replyToId = the
activity id) reached the connector stand-in; anything else is an error. Latency is from sending
the activity until both happened. Throughput per target and concurrency is the median over
rounds; percentiles are over the turns of all rounds. `bot_cpu` is the bot process's CPU time
divided by wall time during the measured phases (1.0 = one core saturated).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "turns.json"
TENANT_ID = "bench-tenant-0000"
HELP_USER = "bench-help-user"
STATUS_USER = "bench-status-user"
ENGAGEMENTS_FOR_STATUS = 20
TARGETS = ("help", "status", "echo")
TEXT = {"help": "/help", "status": "/status", "echo": "hello"}
USER = {"help": HELP_USER, "status": STATUS_USER, "echo": "bench-echo-user"}
REPLY_TIMEOUT_S = 10.0
HARD_LIMIT_S = 420.0  # the whole run, whatever the options


# --- processes -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _bot_cpus() -> tuple[set[int] | None, set[int] | None]:
    """(CPUs for the bots, CPUs for this process), or (None, None) when there is one CPU."""
    try:
        available = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return None, None
    if len(available) < 2:
        return None, None
    return {available[0]}, set(available[1:])


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (0.0 where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


@dataclasses.dataclass
class BotProcess:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    ready_s: float  # from spawn until /healthz answered


async def _wait_healthy(url: str, process: subprocess.Popen[bytes], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"process {process.pid} exited with {process.returncode}")
            try:
                async with http.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.01)
    raise RuntimeError(f"{url} not healthy within {within_s} s")


def _start_process(
    argv: list[str], env: dict[str, str], cpus: set[int] | None, log: Path
) -> subprocess.Popen[bytes]:
    def pin() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)

    with open(log, "wb") as out:
        return subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=pin
        )


async def _spawn(
    name: str, argv: list[str], env: dict[str, str], cpus: set[int] | None, log: Path
) -> BotProcess:
    port = _free_port()
    env = {**env, "PORT": str(port)}
    argv = [*argv, str(port)] if name == "echo" else argv
    started = time.monotonic()
    process = _start_process(argv, env, cpus, log)
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_healthy(url, process, within_s=30)
    except BaseException:
        _stop(process)
        raise
    return BotProcess(name, process, url, time.monotonic() - started)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # aiohttp's run_app shuts down cleanly on SIGINT
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# --- seeding ---------------------------------------------------------------------------------


async def seed_database(database_url: str) -> None:
    """Create the schema and 20 engagements requested by STATUS_USER, through storage/."""
    sys.path.insert(0, str(ROOT))
    from core.model import Engagement
    from storage.repositories import open_storage

    storage = await open_storage(database_url)
    try:
        now = datetime.now(UTC)
        async with storage.transaction() as tx:
            for i in range(ENGAGEMENTS_FOR_STATUS):
                await tx.engagements.add(
                    Engagement(
                        requester_id=STATUS_USER,
                        requester_name="Bench Status",
                        tenant_id=TENANT_ID,
                        project_title=f"Benchmark project {i + 1}",
                        description="Seeded by bench/turns.py",
                        freelancer_name=f"Freelancer {i + 1}",
                        freelancer_email=f"freelancer{i + 1}@example.org",
                        start_date=date.today(),
                        end_date=date.today() + timedelta(days=90),
                        team_id="bench-team-group",
                        team_name="Bench Team",
                        channel_name=f"fl-bench-{i + 1}",
                        created_at=now - timedelta(minutes=i),
                        updated_at=now - timedelta(minutes=i),
                    )
                )
            await tx.commit()
    finally:
        await storage.close()


# --- connector stand-in and load -------------------------------------------------------------


class Connector:
    """Accepts replies and resolves the future of the activity each one answers."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[None]] = {}
        self.replies = 0
        self.unexpected = 0
        self._ids = 0
        self._runner: web.AppRunner | None = None
        self.service_url = ""

    async def start(self) -> None:
        async def reply(request: web.Request) -> web.Response:
            body = await request.json()
            activity_id = request.match_info.get("activity_id") or body.get("replyToId")
            self.replies += 1
            future = self.waiting.pop(activity_id, None)
            if future is not None and not future.done():
                future.set_result(None)
            else:
                self.unexpected += 1
            self._ids += 1
            return web.json_response({"id": f"r-{self._ids}"}, status=201)

        app = web.Application(client_max_size=4 * 1024**2)
        app.router.add_post("/v3/conversations/{conversation_id}/activities", reply)
        app.router.add_post("/v3/conversations/{conversation_id}/activities/{activity_id}", reply)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = self._runner.addresses[0][1]
        self.service_url = f"http://127.0.0.1:{port}/"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def teams_message(target: str, activity_id: str, service_url: str) -> dict[str, Any]:
    """A personal-chat message as Teams sends it (the fields the product reads)."""
    user = USER[target]
    return {
        "type": "message",
        "id": activity_id,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "localTimestamp": datetime.now(UTC).isoformat(),
        "serviceUrl": service_url,
        "channelId": "msteams",
        "from": {"id": f"29:{user}", "name": "Bench User", "aadObjectId": user},
        "conversation": {
            "id": f"a:bench-{user}",
            "conversationType": "personal",
            "tenantId": TENANT_ID,
        },
        "recipient": {"id": "28:bench-bot", "name": "Freelance Connector"},
        "textFormat": "plain",
        "locale": "en-US",
        "text": TEXT[target],
        "entities": [
            {"type": "clientInfo", "locale": "en-US", "country": "US", "platform": "Web"}
        ],
        "channelData": {"tenant": {"id": TENANT_ID}},
    }


@dataclasses.dataclass
class Phase:
    target: str
    concurrency: int
    round: int
    seconds: float
    turns: int
    errors: int
    latencies_ms: list[float]
    bot_cpu: float

    @property
    def throughput(self) -> float:
        return self.turns / self.seconds if self.seconds else 0.0


async def run_phase(
    http: aiohttp.ClientSession,
    connector: Connector,
    bot: BotProcess,
    target: str,
    concurrency: int,
    round_no: int,
    warmup_s: float,
    measure_s: float,
) -> Phase:
    latencies: list[float] = []
    counts = {"turns": 0, "errors": 0}
    measuring = False
    stop_at = time.monotonic() + warmup_s + measure_s
    url = f"{bot.url}/api/messages"

    async def one_turn() -> None:
        activity_id = f"{target}-{uuid.uuid4().hex}"
        loop = asyncio.get_running_loop()
        replied: asyncio.Future[None] = loop.create_future()
        connector.waiting[activity_id] = replied
        body = teams_message(target, activity_id, connector.service_url)
        counted = measuring
        started = time.perf_counter()
        ok = False
        try:
            async with http.post(url, json=body) as response:
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
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                counts["errors"] += 1

    async def worker() -> None:
        while time.monotonic() < stop_at:
            await one_turn()

    async def switch_to_measuring() -> tuple[float, float]:
        nonlocal measuring
        await asyncio.sleep(warmup_s)
        measuring = True
        return time.monotonic(), _cpu_seconds(bot.process.pid)

    switch = asyncio.ensure_future(switch_to_measuring())
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    measure_start, cpu_start = await switch
    # Turns started before the deadline have all finished: count the wall time until now.
    elapsed = time.monotonic() - measure_start
    cpu = _cpu_seconds(bot.process.pid) - cpu_start
    measuring = False
    return Phase(
        target,
        concurrency,
        round_no,
        elapsed,
        counts["turns"],
        counts["errors"],
        latencies,
        cpu / elapsed if elapsed else 0.0,
    )


# --- report ----------------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summarise(phases: list[Phase], concurrencies: list[int]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for concurrency in concurrencies:
        row: dict[str, Any] = {}
        for target in TARGETS:
            mine = [p for p in phases if p.target == target and p.concurrency == concurrency]
            if not mine:
                continue
            latencies = [x for p in mine for x in p.latencies_ms]
            row[target] = {
                "throughput": round(statistics.median(p.throughput for p in mine), 1),
                "throughput_per_round": [round(p.throughput, 1) for p in mine],
                "p50_ms": round(_percentile(latencies, 50), 2),
                "p95_ms": round(_percentile(latencies, 95), 2),
                "p99_ms": round(_percentile(latencies, 99), 2),
                "turns": sum(p.turns for p in mine),
                "errors": sum(p.errors for p in mine),
                "bot_cpu": round(statistics.median(p.bot_cpu for p in mine), 2),
            }
        echo = row.get("echo")
        ratios: dict[str, Any] = {}
        if echo and echo["throughput"]:
            for target in ("help", "status"):
                if target in row:
                    ratios[target] = {
                        "throughput_ratio": round(
                            row[target]["throughput"] / echo["throughput"], 2
                        ),
                        "p99_ratio": round(row[target]["p99_ms"] / echo["p99_ms"], 2),
                    }
        results[str(concurrency)] = {"targets": row, "product_vs_echo": ratios}
    return results


def print_table(summary: dict[str, Any]) -> None:
    header = (
        f"{'conc':>4}  {'target':<7} {'turns/s':>8}  {'per round':<22} {'p50 ms':>7} "
        f"{'p95 ms':>7} {'p99 ms':>7} {'cpu':>5} {'err':>4}  {'x echo':>6}"
    )
    print(header)
    print("-" * len(header))
    for concurrency, block in summary.items():
        for target, figures in block["targets"].items():
            ratio = block["product_vs_echo"].get(target, {}).get("throughput_ratio")
            per_round = ", ".join(f"{x:.0f}" for x in figures["throughput_per_round"])
            print(
                f"{concurrency:>4}  {target:<7} {figures['throughput']:>8.1f}  {per_round:<22} "
                f"{figures['p50_ms']:>7.1f} {figures['p95_ms']:>7.1f} {figures['p99_ms']:>7.1f} "
                f"{figures['bot_cpu']:>5.2f} {figures['errors']:>4}  "
                f"{(f'{ratio:.2f}x' if ratio is not None else ''):>6}"
            )


# --- main ------------------------------------------------------------------------------------


@contextmanager
def _temporary_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="bench-turns-") as directory:
        yield directory


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    deadline = time.monotonic() + HARD_LIMIT_S
    bot_cpus, own_cpus = _bot_cpus()
    if own_cpus:
        os.sched_setaffinity(0, own_cpus)
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    processes: list[BotProcess] = []
    connector = Connector()
    with _temporary_database() as directory:
        database_url = f"sqlite+aiosqlite:///{directory}/bench.db"
        await seed_database(database_url)
        await connector.start()
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        for name in ("APP_ID", "MicrosoftAppId", "GRAPH_CLIENT_ID", "GRAPH_TOKEN"):
            env.pop(name, None)  # dev mode
        try:
            product = await _spawn(
                "product",
                [sys.executable, args.product],
                env,
                bot_cpus,
                Path(directory) / "product.log",
            )
            processes.append(product)
            echo = await _spawn(
                "echo",
                [sys.executable, "bench/echo_bot.py"],
                env,
                bot_cpus,
                Path(directory) / "echo.log",
            )
            processes.append(echo)
            bots = {"help": product, "status": product, "echo": echo}
            print(
                f"product ready in {product.ready_s:.2f} s, echo bot in {echo.ready_s:.2f} s; "
                f"bots on CPU {sorted(bot_cpus) if bot_cpus else 'any'}, "
                f"load + connector on CPU {sorted(own_cpus) if own_cpus else 'any'}",
                flush=True,
            )
            phases: list[Phase] = []
            limit = aiohttp.TCPConnector(limit=max(concurrencies) * 2, force_close=False)
            timeout = aiohttp.ClientTimeout(total=REPLY_TIMEOUT_S)
            async with aiohttp.ClientSession(connector=limit, timeout=timeout) as http:
                # One untimed turn per target first (imports, caches, the first DB connection).
                for target in TARGETS:
                    await run_phase(http, connector, bots[target], target, 1, 0, 0.0, 0.3)
                for round_no in range(1, args.rounds + 1):
                    for concurrency in concurrencies:
                        shift = (round_no - 1) % len(TARGETS)
                        order = TARGETS[shift:] + TARGETS[:shift]
                        for target in order:
                            if time.monotonic() + args.warmup + args.seconds > deadline:
                                print("time limit reached; stopping early", flush=True)
                                break
                            phase = await run_phase(
                                http,
                                connector,
                                bots[target],
                                target,
                                concurrency,
                                round_no,
                                args.warmup,
                                args.seconds,
                            )
                            phases.append(phase)
                            print(
                                f"round {round_no} conc {concurrency:>2} {target:<6} "
                                f"{phase.throughput:7.1f} turns/s  errors {phase.errors}  "
                                f"bot cpu {phase.bot_cpu:.2f}",
                                flush=True,
                            )
        finally:
            for bot in processes:
                _stop(bot.process)
            await connector.stop()
    summary = summarise(phases, concurrencies)
    print()
    print_table(summary)
    result = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "bots_pinned_to": sorted(bot_cpus) if bot_cpus else None,
        },
        "settings": {
            "rounds": args.rounds,
            "warmup_s": args.warmup,
            "measure_s": args.seconds,
            "concurrency": concurrencies,
            "engagements_for_status": ENGAGEMENTS_FOR_STATUS,
            "product": args.product,
        },
        "ready_s": {"product": round(product.ready_s, 3), "echo": round(echo.ready_s, 3)},
        "results": summary,
        "phases": [
            {
                "target": p.target,
                "concurrency": p.concurrency,
                "round": p.round,
                "throughput": round(p.throughput, 1),
                "turns": p.turns,
                "errors": p.errors,
                "bot_cpu": round(p.bot_cpu, 2),
            }
            for p in phases
        ],
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="measured time per phase")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured time per phase")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument(
        "--product",
        default="app.py",
        help="the product's entry point (a script run with this Python); default app.py",
    )
    parser.add_argument("--quick", action="store_true", help="1 round, 1.5 s phases")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.warmup = 1, 1.5, 0.5
    result = asyncio.run(main_async(args))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    errors = sum(phase["errors"] for phase in result["phases"])
    raise SystemExit(1 if errors else 0)


if __name__ == "__main__":
    main()
