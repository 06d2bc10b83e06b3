"""The project's monkeypatches of botbuilder 4.17.1 and msrest 0.7.1: all of them, in one place.

`apply()` is idempotent and is called by `FreelanceCloudAdapter.__init__` (bot/adapter.py), so
every adapter the product builds runs patched. Each patch has a regression test in
tests/bot/test_fast_turns.py. Everything else the project changes about botbuilder is done by
subclassing or wrapping (bot/adapter.py, bot/connector_fast.py), not by patching.

1. `msrest ClientRetryPolicy.safe_codes` becomes a frozenset. Every msrest `Configuration`
   (one per ConnectorClient, TokenApiClient, TeamsConnectorClient) computes
   `[i for i in range(999) if i not in self.safe_codes]`; with the upstream 502-item *list*
   that scan costs ~4 ms of CPU per client, about half of a bare botbuilder turn
   (shared/platform/botbuilder-turn-cost.md). Nothing else in msrest reads the attribute; the
   resulting `status_forcelist` is identical.
2. `_OpenIdMetadata._refresh` (inbound JWT validation) fetches the OpenID metadata and the
   signing keys with blocking `requests.get` calls, without a timeout, on the event loop
   (stack-check 2b). Patched to do the same two requests in a worker thread, with a timeout,
   so a key refresh (daily, or on an unknown kid) never stalls every other turn.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import requests
from botframework.connector.auth import jwt_token_extractor
from msrest.universal_http import requests as msrest_requests

# (connect, read) timeout for the OpenID metadata and JWKS fetches, in seconds.
OPENID_FETCH_TIMEOUT = (5.0, 10.0)

_APPLIED_MARK = "_freelance_connector_patched"


def _fetch_openid_keys(url: str) -> list[dict[str, Any]]:
    """What upstream `_OpenIdMetadata._refresh` fetches, blocking (runs in a worker thread)."""
    response = requests.get(url, timeout=OPENID_FETCH_TIMEOUT)
    response.raise_for_status()
    keys_url = response.json()["jwks_uri"]
    response_keys = requests.get(keys_url, timeout=OPENID_FETCH_TIMEOUT)
    response_keys.raise_for_status()
    keys: list[dict[str, Any]] = response_keys.json()["keys"]
    return keys


async def _refresh_off_loop(self: Any) -> None:
    keys = await asyncio.to_thread(_fetch_openid_keys, self.url)
    # Same state change as upstream, made on the loop once both requests succeeded.
    self.last_updated = datetime.now()
    self.keys = keys


def _patch_retry_codes() -> None:
    policy = msrest_requests.ClientRetryPolicy
    if not isinstance(policy.safe_codes, frozenset):
        policy.safe_codes = frozenset(policy.safe_codes)  # type: ignore[assignment]


def _patch_openid_refresh() -> None:
    metadata = jwt_token_extractor._OpenIdMetadata
    if not getattr(metadata._refresh, _APPLIED_MARK, False):
        setattr(_refresh_off_loop, _APPLIED_MARK, True)
        metadata._refresh = _refresh_off_loop


def apply() -> None:
    """Apply every patch (idempotent: a second call changes nothing)."""
    _patch_retry_codes()
    _patch_openid_refresh()


def applied() -> bool:
    """Whether `apply()` has run in this process."""
    return isinstance(msrest_requests.ClientRetryPolicy.safe_codes, frozenset) and getattr(
        jwt_token_extractor._OpenIdMetadata._refresh, _APPLIED_MARK, False
    )
