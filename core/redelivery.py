"""Teams re-sends an activity (same conversation, same id) when a turn is slow; the guard lets
the first delivery through and turns the others away.

Every process remembers the keys it handled (bounded), which catches re-deliveries to the same
replica without touching the database. With `shared` storage (PostgreSQL, where several replicas
run) each first delivery is also claimed in the database, so a copy that reaches another
replica is turned away too. SQLite serves one instance; a database write per turn there would
queue every turn behind SQLite's single write lock for nothing (bench/turns.py: half the
throughput)."""

from __future__ import annotations

import logging
from collections import OrderedDict
from datetime import timedelta

from core.clock import Clock
from core.ports import Storage

log = logging.getLogger(__name__)


class RedeliveryGuard:
    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        *,
        shared: bool,
        retention: timedelta = timedelta(days=1),
        prune_every: int = 500,
        remembered: int = 10_000,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._shared = shared
        # Teams retries within minutes; a day leaves a wide margin and bounds the table.
        self._retention = retention
        self._prune_every = prune_every
        self._remembered = remembered
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._claims = 0

    async def first_delivery(self, key: str) -> bool:
        """True the first time `key` is seen (and records it), False for a re-delivery."""
        if key in self._recent:
            return False
        # Marked before any await: a copy arriving meanwhile on this replica is turned away.
        self._recent[key] = None
        while len(self._recent) > self._remembered:
            self._recent.popitem(last=False)
        if not self._shared:
            return True
        now = self._clock.now()
        async with self._storage.transaction() as tx:
            first = await tx.activities.claim(key, now)
            await tx.commit()
        self._claims += 1
        if self._claims % self._prune_every == 0:
            async with self._storage.transaction() as tx:
                pruned = await tx.activities.prune(now - self._retention)
                await tx.commit()
            log.debug("pruned %d handled activity ids", pruned)
        return first

    async def release(self, key: str) -> None:
        """The turn for `key` failed: let a re-delivery be handled."""
        self._recent.pop(key, None)
        if not self._shared:
            return
        async with self._storage.transaction() as tx:
            await tx.activities.release(key)
            await tx.commit()
