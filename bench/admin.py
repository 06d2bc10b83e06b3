"""Admin commands at scale: p50 and p99 of each command on SQLite and PostgreSQL, with a small
program (1,000 engagements, 10,000 audit records) and a large one (100,000 and 1,000,000) side
by side. The ratio large/small is the point: a query that reads through an index costs about the
same at both sizes, a full scan a hundred times more.

    .venv/bin/python bench/admin.py                 # both backends; ~10 minutes
    .venv/bin/python bench/admin.py --backends sqlite --quick

Each sample is one command as a turn runs it, minus HTTP: the admin check, the queries, the
command's own audit record (a write transaction) and building the card. PostgreSQL is the local
server (BENCH_POSTGRES_URL, default postgresql+asyncpg://postgres@127.0.0.1:5432/test), in a
throwaway database. Results: bench/results/admin.json and the table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cards.admin import (  # noqa: E402
    audit_page_card,
    engagement_page_card,
    report_card,
    timeline_card,
)
from core.admin import AdminService  # noqa: E402
from core.admin_rights import AdminRights  # noqa: E402
from core.config import ProgramConfig  # noqa: E402
from core.exports import ExportKind  # noqa: E402
from core.lifecycle import LifecycleService  # noqa: E402
from core.model import Actor, TeamInstallation  # noqa: E402
from storage.repositories import SqlStorage, open_storage  # noqa: E402
from tests.support.admin_dataset import TEAMS, make_dataset, store  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "admin.json"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TENANT = "bench-tenant"
ADMIN = Actor("bench-admin", "Bench Admin")
SIZES = {"small": (1_000, 10), "large": (100_000, 10)}  # engagements, audit records each


class FixedClock:
    def now(self) -> datetime:
        return NOW


def commands(
    admin: AdminService, count: int, rng: random.Random
) -> dict[str, Callable[[], Awaitable[Any]]]:
    today = NOW.date()
    pages = max(1, min(100, count // 10))

    async def requests() -> Any:
        page, _ = await admin.list_requests(ADMIN, "", rng.randint(1, pages))
        return engagement_page_card(
            "t", page, command="/requests", args="", empty_text="", today=today
        )

    async def requests_failed() -> Any:
        page, _ = await admin.list_requests(ADMIN, "failed", 1)
        return engagement_page_card(
            "t", page, command="/requests", args="", empty_text="", today=today
        )

    async def active_team() -> Any:
        team = rng.choice(TEAMS)[1]
        page, _ = await admin.list_active(ADMIN, TENANT, team, rng.randint(1, 5))
        return engagement_page_card(
            "t", page, command="/active", args="", empty_text="", today=today
        )

    async def expiring() -> Any:
        page = await admin.list_expiring(ADMIN, 30, rng.randint(1, 3))
        return engagement_page_card(
            "t", page, command="/expiring", args="", empty_text="", today=today
        )

    async def show() -> Any:
        timeline = await admin.timeline(ADMIN, TENANT, rng.randint(1, count))
        return timeline_card(timeline)

    async def audit_engagement() -> Any:
        page = await admin.audit_log(ADMIN, rng.randint(1, count), 20, 1)
        return audit_page_card("t", page, command="/audit", args="", empty_text="")

    async def audit_last() -> Any:
        page = await admin.audit_log(ADMIN, None, 200, rng.randint(1, 20))
        return audit_page_card("t", page, command="/audit", args="", empty_text="")

    async def report() -> Any:
        return report_card(await admin.report(ADMIN))

    return {
        "/requests PAGE": requests,
        "/requests failed": requests_failed,
        "/active TEAM PAGE": active_team,
        "/expiring 30": expiring,
        "/show FC-n": show,
        "/audit FC-n": audit_engagement,
        "/audit last 200 PAGE": audit_last,
        "/report": report,
    }


async def measure(storage: SqlStorage, count: int, samples: int, seed: int) -> dict[str, Any]:
    clock = FixedClock()
    config = ProgramConfig(admin_ids=frozenset({ADMIN.aad_id}))
    rights = AdminRights(config.admin_ids)
    lifecycle = LifecycleService(storage, clock, config, rights=rights)
    admin = AdminService(storage, clock, config, rights=rights, lifecycle=lifecycle)
    rng = random.Random(seed)
    results: dict[str, Any] = {}
    for name, run in commands(admin, count, rng).items():
        for _ in range(5):  # warm caches and the connection pool
            await run()
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            await run()
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        results[name] = {
            "p50_ms": round(statistics.median(times), 2),
            "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
            "samples": samples,
        }
    started = time.perf_counter()
    rows = 0
    async for chunk in admin.export_csv(ExportKind.ENGAGEMENTS):
        rows += chunk.count("\r\n")
    seconds = time.perf_counter() - started
    results["export engagements (rows/s)"] = {
        "rows": rows - 1,
        "rows_per_s": round(rows / seconds),
    }
    return results


async def seeded(url: str, count: int, audit_each: int) -> tuple[SqlStorage, float]:
    storage = await open_storage(url)
    dataset = make_dataset(count, now=NOW, tenant_id=TENANT)
    started = time.perf_counter()
    await store(storage, dataset, audit_per_engagement=audit_each, batch=10_000)
    async with storage.transaction() as tx:
        for team_id, name in TEAMS:
            await tx.conversations.save_team(
                TeamInstallation(f"19:{team_id}", team_id, name, TENANT, "", {})
            )
        await tx.commit()
    if url.startswith("postgresql"):
        # Fresh statistics and visibility map, as autovacuum would have after a bulk load.
        async with storage.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql("VACUUM ANALYZE")
    else:
        async with storage.engine.connect() as connection:
            await connection.exec_driver_sql("ANALYZE")
    return storage, time.perf_counter() - started


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def run_backend(
    backend: str, sizes: dict[str, tuple[int, int]], samples: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, (count, audit_each) in sizes.items():
        if backend == "sqlite":
            folder = tempfile.mkdtemp(prefix="bench-admin-")
            url = f"sqlite+aiosqlite:///{folder}/admin.db"
            drop = None
        else:
            base = os.environ.get(
                "BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
            )
            name = f"bench_admin_{secrets.token_hex(4)}"
            admin_dsn = _asyncpg_dsn(base)
            connection = await asyncpg.connect(admin_dsn)
            await connection.execute(f'CREATE DATABASE "{name}"')
            await connection.close()
            url = make_url(base).set(database=name).render_as_string(hide_password=False)
            drop = (admin_dsn, name)
        try:
            storage, load_s = await seeded(url, count, audit_each)
            print(
                f"  {backend} {label}: {count:,} engagements, {count * audit_each:,} audit "
                f"records loaded in {load_s:.0f} s",
                flush=True,
            )
            try:
                out[label] = {
                    "engagements": count,
                    "audit_records": count * audit_each,
                    "load_s": round(load_s, 1),
                    "commands": await measure(storage, count, samples, seed=11),
                }
            finally:
                await storage.close()
        finally:
            if drop is not None:
                connection = await asyncpg.connect(drop[0])
                await connection.execute(f'DROP DATABASE IF EXISTS "{drop[1]}" WITH (FORCE)')
                await connection.close()
    return out


def table(results: dict[str, Any]) -> str:
    lines = [
        f"{'backend':<10} {'command':<24} {'small p50':>10} {'small p99':>10} "
        f"{'large p50':>10} {'large p99':>10} {'p50 ratio':>10}",
    ]
    for backend, sizes in results["backends"].items():
        small, large = sizes["small"]["commands"], sizes["large"]["commands"]
        for name, values in large.items():
            if "p50_ms" not in values:
                continue
            base = small[name]
            ratio = values["p50_ms"] / base["p50_ms"] if base["p50_ms"] else float("nan")
            lines.append(
                f"{backend:<10} {name:<24} {base['p50_ms']:>10.2f} {base['p99_ms']:>10.2f} "
                f"{values['p50_ms']:>10.2f} {values['p99_ms']:>10.2f} {ratio:>10.2f}"
            )
        export = large["export engagements (rows/s)"]
        lines.append(f"{backend:<10} export engagements: {export['rows_per_s']:,} rows/s (large)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="10,000 engagements, 30 samples")
    args = parser.parse_args()
    sizes = dict(SIZES)
    samples = args.samples
    if args.quick:
        sizes = {"small": (1_000, 10), "large": (10_000, 10)}
        samples = 30
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "samples": samples,
        "backends": {},
    }
    for backend in args.backends.split(","):
        print(f"{backend}:", flush=True)
        results["backends"][backend] = asyncio.run(run_backend(backend, sizes, samples))
    print(table(results))
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
