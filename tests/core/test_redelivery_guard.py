"""The re-delivery guard on a real SQLite database: first delivery only, and old ids pruned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.redelivery import RedeliveryGuard
from storage.repositories import open_storage
from tests.support.clock import FakeClock


async def test_the_guard_lets_the_first_delivery_through_and_prunes_old_ids(
    tmp_path: Path,
) -> None:
    clock = FakeClock(datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    storage = await open_storage(f"sqlite+aiosqlite:///{tmp_path / 'g.db'}", clock=clock)
    try:
        guard = RedeliveryGuard(
            storage, clock, shared=True, retention=timedelta(hours=1), prune_every=4, remembered=1
        )
        assert await guard.first_delivery("a") is True
        assert await guard.first_delivery("a") is False  # remembered here
        assert await guard.first_delivery("c") is True  # pushes "a" out of memory...
        assert await guard.first_delivery("a") is False  # ...but the database knows it
        clock.advance(2 * 3600)
        # The fourth database claim prunes what is older than the retention: "a" is forgotten...
        assert await guard.first_delivery("b") is True
        assert await guard.first_delivery("a") is True
        # ...and a released id can be handled again.
        await guard.release("b")
        assert await guard.first_delivery("b") is True
    finally:
        await storage.close()


async def test_without_shared_storage_the_guard_remembers_in_memory_only(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    storage = await open_storage(f"sqlite+aiosqlite:///{tmp_path / 'g.db'}", clock=clock)
    try:
        guard = RedeliveryGuard(storage, clock, shared=False, remembered=2)
        assert await guard.first_delivery("a") is True
        assert await guard.first_delivery("a") is False
        await guard.release("a")
        assert await guard.first_delivery("a") is True
        async with storage.transaction() as tx:
            # Nothing was written: a claim there is still the first.
            assert await tx.activities.claim("a", clock.now()) is True
        for key in ("b", "c"):
            assert await guard.first_delivery(key) is True
        assert await guard.first_delivery("a") is True  # forgotten: only 2 are remembered
    finally:
        await storage.close()
