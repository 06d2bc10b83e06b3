"""Graph's documented throttling limits, which request counts against which limit, and the
client-side pacer that keeps the app under them.

One table serves both sides: the Graph simulator enforces it (429 + Retry-After) and the
Graph client paces its requests with it, so that 429s are rare rather than the way the app
finds its speed. Numbers: /work/shared/platform/graph-teams-facts.md B2 (Teams), B3 (identity),
B4 (invitations).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

Clock = Callable[[], float]

# Which buckets a request draws from. Teams: per team, and per app+tenant by request type.
TEAM_PREFIX = "team:"
TEAMS_GET_MEMBERS_CHANNELS = "teams:get_members_channels"
TEAMS_POST_CHANNEL = "teams:post_channel"
TEAMS_PATCH_CHANNEL = "teams:patch_channel"
TEAMS_OTHER_GET = "teams:other_get"
TEAMS_OTHER = "teams:other"
INVITATIONS = "invitations"
IDENTITY_RU = "identity:resource_units"
IDENTITY_WRITES = "identity:writes"
TENANT_WRITES = "identity:tenant_writes"

_API_PATH = re.compile(r"/(?:v1\.0|beta)(/.*)?$")
_TEAM_PATH = re.compile(r"^/teams/([^/]+)(/.*)?$")


@dataclass(frozen=True)
class GraphLimits:
    """Per app per tenant unless said otherwise. Each is `capacity` per `window` seconds; a
    bucket holds one window's worth and refills at capacity / window."""

    per_team: tuple[float, float] = (4, 1)  # "4 requests per second per app on a team"
    teams_get_members_channels: tuple[float, float] = (60, 1)
    teams_post_channel: tuple[float, float] = (30, 1)
    teams_patch_channel: tuple[float, float] = (30, 1)  # "PATCH team, channel, tab, ..."
    teams_other_get: tuple[float, float] = (30, 1)
    teams_other: tuple[float, float] = (30, 1)  # POST/DELETE members (by elimination)
    invitations: tuple[float, float] = (150, 5)  # per tenant, all apps
    identity_resource_units: tuple[float, float] = (3500, 10)  # tenant < 50 users
    identity_writes: tuple[float, float] = (3000, 150)
    tenant_writes: tuple[float, float] = (18000, 300)  # per tenant, all apps

    def of(self, key: str) -> tuple[float, float]:
        if key.startswith(TEAM_PREFIX):
            return self.per_team
        return {
            TEAMS_GET_MEMBERS_CHANNELS: self.teams_get_members_channels,
            TEAMS_POST_CHANNEL: self.teams_post_channel,
            TEAMS_PATCH_CHANNEL: self.teams_patch_channel,
            TEAMS_OTHER_GET: self.teams_other_get,
            TEAMS_OTHER: self.teams_other,
            INVITATIONS: self.invitations,
            IDENTITY_RU: self.identity_resource_units,
            IDENTITY_WRITES: self.identity_writes,
            TENANT_WRITES: self.tenant_writes,
        }[key]

    def rate(self, key: str) -> float:
        capacity, window = self.of(key)
        return capacity / window

    def scaled(self, factor: float) -> GraphLimits:
        """Every capacity times `factor` (a replica's share of the tenant's budget)."""
        if factor <= 0:
            raise ValueError("factor must be positive")
        values = {
            name: (getattr(self, name)[0] * factor, getattr(self, name)[1])
            for name in self.__dataclass_fields__
        }
        return replace(self, **values)


DOCUMENTED_LIMITS = GraphLimits()


@dataclass(frozen=True)
class Charge:
    key: str
    cost: float = 1.0


def api_path(url_path: str) -> str:
    """The path after /v1.0 (or /beta); the path itself when there is no version segment."""
    match = _API_PATH.search(url_path)
    if match is None:
        return url_path
    return match.group(1) or "/"


def charges(method: str, path: str, query: Mapping[str, str] | None = None) -> list[Charge]:
    """What one request costs, per bucket. `path` is the path after /v1.0."""
    method = method.upper()
    query = query or {}
    if team := _TEAM_PATH.match(path):
        team_id, rest = team.group(1), (team.group(2) or "").rstrip("/")
        out = [Charge(TEAM_PREFIX + team_id)]
        segments = [s for s in rest.split("/") if s]
        if method == "GET":
            listing = segments in (["members"], ["channels"]) or (
                len(segments) == 3 and segments[0] == "channels" and segments[2] == "members"
            )
            out.append(Charge(TEAMS_GET_MEMBERS_CHANNELS if listing else TEAMS_OTHER_GET))
        elif method in ("POST", "PUT") and segments == ["channels"]:
            out.append(Charge(TEAMS_POST_CHANNEL))
        elif method == "PATCH" and len(segments) == 2 and segments[0] == "channels":
            out.append(Charge(TEAMS_PATCH_CHANNEL))
        else:
            # "Other API calls for Teams": member adds and removals (team and channel).
            out.append(Charge(TEAMS_OTHER))
        return out
    if path.startswith("/invitations"):
        # The invitation creates a user object: it also spends the identity write budget.
        return [Charge(INVITATIONS), *_identity(method, path, query)]
    if path.startswith(("/users", "/groups", "/directoryObjects", "/me")):
        # PATCH / DELETE users and POST sponsors/$ref are writes like any other (facts B3).
        return _identity(method, path, query)
    return []


def _identity(method: str, path: str, query: Mapping[str, str]) -> list[Charge]:
    if method != "GET":
        return [Charge(IDENTITY_RU, 1), Charge(IDENTITY_WRITES), Charge(TENANT_WRITES)]
    # Costs from facts B3: GET users 2, other GETs 1; $select -1, $expand +1, $top < 20 -1.
    cost = 2 if path.rstrip("/") == "/users" else 1
    if "$select" in query:
        cost -= 1
    if "$expand" in query:
        cost += 1
    top = query.get("$top", "")
    if top.isdigit() and int(top) < 20:
        cost -= 1
    return [Charge(IDENTITY_RU, max(1, cost))]


class TokenBucket:
    """`capacity` tokens, refilled at `rate` per second."""

    def __init__(self, capacity: float, rate: float, now: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.updated = now
        self.not_before = now  # set by a 429's Retry-After

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until `cost` tokens are there (0: now)."""
        self._refill(now)
        missing = cost - self.tokens
        by_tokens = missing / self.rate if missing > 0 else 0.0
        return max(by_tokens, self.not_before - now, 0.0)

    def take(self, cost: float, now: float) -> None:
        self._refill(now)
        self.tokens -= cost

    def reserve(self, cost: float, now: float) -> float:
        """Take `cost` now, going into debt if needed; returns how long to wait before using
        it. Reservations are served in order (first come, first served)."""
        wait = self.wait_for(cost, now)
        self.take(cost, now)
        return wait

    def hold(self, until: float) -> None:
        self.not_before = max(self.not_before, until)


class ThrottleState:
    """Server side (the simulator): admit a request only if every bucket it draws from has
    the tokens; otherwise refuse it without spending any, and say when to come back."""

    def __init__(self, limits: GraphLimits, clock: Clock = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def _bucket(self, key: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            capacity, window = self.limits.of(key)
            bucket = self._buckets[key] = TokenBucket(capacity, capacity / window, now)
        return bucket

    def admit(self, request_charges: Iterable[Charge]) -> tuple[float, str] | None:
        """None if admitted (tokens spent); else (seconds to wait, the limiting key)."""
        now = self._clock()
        chosen = list(request_charges)
        worst: tuple[float, str] | None = None
        for charge in chosen:
            wait = self._bucket(charge.key, now).wait_for(charge.cost, now)
            if wait > 0 and (worst is None or wait > worst[0]):
                worst = (wait, charge.key)
        if worst is not None:
            return worst
        for charge in chosen:
            self._bucket(charge.key, now).take(charge.cost, now)
        return None


class GraphPacer:
    """Client side: before a request goes out, reserve its tokens in every bucket it draws from
    (first come, first served) and sleep until all are there. Buckets hold `burst_fraction` of
    Graph's own, so that the requests' scattered arrival at Graph stays under Graph's bucket.

    A reservation says when a request may go, but a busy event loop can wake several sleepers
    late and at once; a second set of buckets, checked when the request really leaves
    (`send_fraction` of Graph's bucket), spaces such a bunch out again. A 429's Retry-After
    holds the buckets the throttled request drew from, so other requests wait instead of being
    throttled too."""

    def __init__(
        self,
        limits: GraphLimits = DOCUMENTED_LIMITS,
        *,
        burst_fraction: float = 0.5,
        send_fraction: float = 0.75,
        clock: Clock = time.monotonic,
    ) -> None:
        self.limits = limits
        self.burst_fraction = burst_fraction
        self.send_fraction = send_fraction
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._sent: dict[str, TokenBucket] = {}
        self.waited_s = 0.0  # total time requests spent waiting here

    def _make(self, key: str, fraction: float, now: float) -> TokenBucket:
        capacity, window = self.limits.of(key)
        burst = max(1.0, math.floor(capacity * fraction))
        return TokenBucket(burst, capacity / window, now)

    def _bucket(self, key: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = self._make(key, self.burst_fraction, now)
        return bucket

    def _sent_bucket(self, key: str, now: float) -> TokenBucket:
        bucket = self._sent.get(key)
        if bucket is None:
            bucket = self._sent[key] = self._make(key, self.send_fraction, now)
        return bucket

    def reserve(self, request_charges: Iterable[Charge]) -> float:
        now = self._clock()
        wait = 0.0
        for charge in request_charges:
            wait = max(wait, self._bucket(charge.key, now).reserve(charge.cost, now))
        return wait

    def send_wait(self, request_charges: Iterable[Charge]) -> float:
        """0 and the tokens taken if the request may leave now; else how long to wait."""
        now = self._clock()
        chosen = list(request_charges)
        wait = max(
            (self._sent_bucket(c.key, now).wait_for(c.cost, now) for c in chosen), default=0.0
        )
        if wait <= 0:
            for charge in chosen:
                self._sent_bucket(charge.key, now).take(charge.cost, now)
        return wait

    async def acquire(self, request_charges: Iterable[Charge]) -> None:
        chosen = list(request_charges)
        wait = self.reserve(chosen)
        if wait > 0:
            self.waited_s += wait
            await asyncio.sleep(wait)
        while (wait := self.send_wait(chosen)) > 0:
            self.waited_s += wait
            await asyncio.sleep(wait)

    def throttled(self, request_charges: Iterable[Charge], retry_after_s: float) -> None:
        """Hold for `retry_after_s` the bucket that most likely refused: the team's for a
        Teams request (its 4 per second is by far the smallest), otherwise every bucket the
        request drew from. Holding a per-tenant bucket for one team's 429 would stall all."""
        now = self._clock()
        until = now + max(0.0, retry_after_s)
        chosen = list(request_charges)
        team = [c for c in chosen if c.key.startswith(TEAM_PREFIX)]
        for charge in team or chosen:
            self._bucket(charge.key, now).hold(until)
            self._sent_bucket(charge.key, now).hold(until)


def bound_seconds(
    request_charges: Iterable[Iterable[Charge]], limits: GraphLimits = DOCUMENTED_LIMITS
) -> tuple[float, str, dict[str, float]]:
    """The lower bound on wall time that the limits imply for these requests: the largest, over
    every bucket, of units spent / the bucket's rate. Returns (seconds, key, units per key)."""
    spent: dict[str, float] = {}
    for one in request_charges:
        for charge in one:
            spent[charge.key] = spent.get(charge.key, 0.0) + charge.cost
    best, best_key = 0.0, ""
    for key, units in spent.items():
        seconds = units / limits.rate(key)
        if seconds > best:
            best, best_key = seconds, key
    return best, best_key, spent
