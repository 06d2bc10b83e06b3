"""The record of handled activities (Teams re-delivery), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from storage.repositories import SqlStorage

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


async def claim(storage: SqlStorage, key: str, now: datetime = NOW) -> bool:
    async with storage.transaction() as tx:
        first = await tx.activities.claim(key, now)
        await tx.commit()
    return first


async def test_a_key_is_claimed_once_until_released(storage: SqlStorage) -> None:
    assert await claim(storage, "msteams|a:1|1700000000001") is True
    assert await claim(storage, "msteams|a:1|1700000000001") is False
    assert await claim(storage, "msteams|a:2|1700000000001") is True  # another conversation
    async with storage.transaction() as tx:
        await tx.activities.release("msteams|a:1|1700000000001")
        await tx.commit()
    assert await claim(storage, "msteams|a:1|1700000000001") is True


async def test_a_claim_not_committed_leaves_nothing(storage: SqlStorage) -> None:
    async with storage.transaction() as tx:
        assert await tx.activities.claim("k", NOW) is True
    assert await claim(storage, "k") is True


async def test_concurrent_claims_of_one_key_let_exactly_one_through(storage: SqlStorage) -> None:
    for round_ in range(10):
        results = await asyncio.gather(*(claim(storage, f"key-{round_}") for _ in range(5)))
        assert sorted(results) == [False, False, False, False, True]


async def test_prune_forgets_old_keys_only(storage: SqlStorage) -> None:
    await claim(storage, "old", NOW - timedelta(days=2))
    await claim(storage, "new", NOW - timedelta(hours=1))
    async with storage.transaction() as tx:
        assert await tx.activities.prune(NOW - timedelta(days=1)) == 1
        await tx.commit()
    assert await claim(storage, "old") is True
    assert await claim(storage, "new") is False
