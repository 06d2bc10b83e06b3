"""How long to wait before retrying a job."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter that never retries before Graph's Retry-After."""

    base_s: float = 2.0
    cap_s: float = 300.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        ceiling = min(self.cap_s, self.base_s * 2.0 ** max(0, attempt - 1))
        # Half fixed, half random: spreads retries of many jobs hit by the same outage.
        jittered = ceiling / 2 + rng.uniform(0, ceiling / 2)
        return max(jittered, retry_after or 0.0)
