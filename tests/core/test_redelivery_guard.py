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
        guard = RedeliveryGuard(storage, clock, retention=timedelta(hours=1), prune_every=3)
        assert await guard.first_delivery("a") is True
        assert await guard.first_delivery("a") is False
        clock.advance(2 * 3600)
        # The third claim prunes what is older than the retention: "a" is forgotten...
        assert await guard.first_delivery("b") is True
        assert await guard.first_delivery("a") is True
        # ...and a released id can be handled again.
        await guard.release("b")
        assert await guard.first_delivery("b") is True
    finally:
        await storage.close()
