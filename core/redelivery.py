"""Teams re-sends an activity (same conversation, same id) when a turn is slow; the guard lets
the first delivery through and turns the others away, on every replica, through the database."""

from __future__ import annotations

import logging
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
        retention: timedelta = timedelta(days=1),
        prune_every: int = 500,
    ) -> None:
        self._storage = storage
        self._clock = clock
        # Teams retries within minutes; a day leaves a wide margin and bounds the table.
        self._retention = retention
        self._prune_every = prune_every
        self._claims = 0

    async def first_delivery(self, key: str) -> bool:
        """True the first time `key` is seen (and records it), False for a re-delivery."""
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
        async with self._storage.transaction() as tx:
            await tx.activities.release(key)
            await tx.commit()
