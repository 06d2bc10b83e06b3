"""Building the msgraph-sdk client: which credential, which endpoint, which middleware."""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential
from azure.identity.aio import (
    CertificateCredential,
    ClientSecretCredential,
    ManagedIdentityCredential,
)
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_http.middleware.options import RetryHandlerOption
from msgraph import graph_request_adapter as _msgraph_adapter
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory

from core.metrics import Metrics, graph_endpoint
from graph.rate_limits import Charge, GraphPacer, api_path, charges

GLOBAL_GRAPH_URL = "https://graph.microsoft.com/v1.0"
_DEFAULT_SCOPE = "https://graph.microsoft.com/.default"
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


@dataclass(frozen=True)
class GraphSettings:
    """Where Graph is and how the app proves who it is. Configure exactly one credential:
    a client secret, a certificate, managed identity, or a static token (local stand-in)."""

    base_url: str = GLOBAL_GRAPH_URL
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    certificate_path: str | None = None
    use_managed_identity: bool = False
    static_token: str | None = None
    # Seconds one request may take before it counts as failed (transient); None: httpx's.
    request_timeout_s: float | None = 30.0

    @property
    def is_configured(self) -> bool:
        return bool(
            self.client_secret
            or self.certificate_path
            or self.use_managed_identity
            or self.static_token
        )

    def __repr__(self) -> str:
        # The dataclass repr would print the secret and the token.
        return (
            f"GraphSettings(base_url={self.base_url!r}, tenant_id={self.tenant_id!r}, "
            f"client_id={self.client_id!r}, client_secret={_mask(self.client_secret)}, "
            f"certificate_path={self.certificate_path!r}, "
            f"use_managed_identity={self.use_managed_identity!r}, "
            f"static_token={_mask(self.static_token)})"
        )


def _mask(value: str | None) -> str:
    return "None" if value is None else "'***'"


class StaticTokenCredential(AsyncTokenCredential):
    """Hands out one fixed bearer token: for a local Graph stand-in, never for Microsoft."""

    def __init__(self, token: str, *, lifetime_s: int = 3600) -> None:
        self._token = token
        self._lifetime_s = lifetime_s

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + self._lifetime_s)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> StaticTokenCredential:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def __repr__(self) -> str:
        return "StaticTokenCredential(token='***')"


def graph_credential(settings: GraphSettings) -> AsyncTokenCredential:
    """The azure-identity async credential `settings` asks for (ValueError if none or several)."""
    chosen = [
        name
        for name, on in (
            ("static_token (GRAPH_TOKEN)", bool(settings.static_token)),
            ("certificate_path", bool(settings.certificate_path)),
            ("client_secret", bool(settings.client_secret)),
            ("use_managed_identity", settings.use_managed_identity),
        )
        if on
    ]
    if not chosen:
        raise ValueError(
            "No Microsoft Graph credential is configured: set a client secret, a certificate "
            "path or managed identity (with tenant and client id where needed), or a static "
            "token for a local Graph stand-in."
        )
    if len(chosen) > 1:
        # Picking one silently would hide a deployment mistake until the first 401.
        raise ValueError(
            "More than one Microsoft Graph credential is configured "
            f"({', '.join(chosen)}); configure exactly one."
        )
    if settings.static_token:
        return StaticTokenCredential(settings.static_token)
    if settings.use_managed_identity:
        return ManagedIdentityCredential(client_id=settings.client_id or None)
    missing = [n for n in ("tenant_id", "client_id") if not getattr(settings, n)]
    if missing:
        raise ValueError(
            f"Microsoft Graph credential {chosen[0]} also needs {' and '.join(missing)}."
        )
    assert settings.tenant_id is not None and settings.client_id is not None
    if settings.certificate_path:
        return CertificateCredential(
            settings.tenant_id, settings.client_id, certificate_path=settings.certificate_path
        )
    assert settings.client_secret is not None
    return ClientSecretCredential(settings.tenant_id, settings.client_id, settings.client_secret)


def graph_scope(base_url: str) -> str:
    """The token scope for a Graph base URL: national clouds (graph.microsoft.us, ...) issue
    tokens for their own host."""
    parts = urlsplit(base_url)
    if parts.scheme == "https" and parts.hostname and parts.hostname not in _LOCAL_HOSTS:
        return f"https://{parts.hostname}/.default"
    return _DEFAULT_SCOPE


def _pacing_hooks(pacer: GraphPacer) -> dict[str, list[Any]]:
    """httpx event hooks: wait for the request's rate-limit tokens before it goes out, and
    hold the buckets a throttled request drew from for its Retry-After."""

    def charges_of(request: httpx.Request) -> list[Charge]:
        return charges(request.method, api_path(request.url.path), dict(request.url.params))

    async def before(request: httpx.Request) -> None:
        await pacer.acquire(charges_of(request))

    async def after(response: httpx.Response) -> None:
        if response.status_code == 429:
            raw = response.headers.get("Retry-After", "")
            seconds = float(raw) if raw.strip().isdigit() else 1.0
            pacer.throttled(charges_of(response.request), seconds)

    return {"request": [before], "response": [after]}


_STARTED = "fc_started"


def _metrics_hooks(metrics: Metrics) -> dict[str, list[Any]]:
    """httpx event hooks counting every Graph response by method, endpoint template and status
    (fc_graph_requests_total), and timing it (fc_graph_request_duration_seconds)."""

    async def before(request: httpx.Request) -> None:
        request.extensions[_STARTED] = time.perf_counter()

    async def after(response: httpx.Response) -> None:
        request = response.request
        endpoint = graph_endpoint(api_path(request.url.path))
        metrics.graph_requests.inc(request.method, endpoint, str(response.status_code))
        started = request.extensions.get(_STARTED)
        if isinstance(started, float):
            metrics.graph_seconds.observe(time.perf_counter() - started, request.method, endpoint)

    return {"request": [before], "response": [after]}


def _http_client() -> httpx.AsyncClient:
    # Kiota would retry 429/503/504 itself (three times, sleeping for Retry-After without a
    # cap) inside one job attempt; the durable job worker retries with backoff instead, so
    # every request goes out exactly once.
    options = dict(_msgraph_adapter.options)
    options[RetryHandlerOption.get_key()] = RetryHandlerOption(
        delay=0, max_retries=0, should_retry=False
    )
    client: httpx.AsyncClient = GraphClientFactory.create_with_default_middleware(options=options)
    return client


_resources: weakref.WeakKeyDictionary[
    GraphServiceClient, tuple[httpx.AsyncClient, AsyncTokenCredential]
] = weakref.WeakKeyDictionary()


def build_graph_client(
    settings: GraphSettings, *, pacer: GraphPacer | None = None, metrics: Metrics | None = None
) -> GraphServiceClient:
    """A GraphServiceClient for `settings.base_url` with kiota's retries turned off; with a
    `pacer`, every request first waits for its share of Graph's rate limits; with `metrics`,
    every response is counted and timed.
    Raises ValueError when no (or more than one) credential is configured."""
    credential = graph_credential(settings)
    auth = AzureIdentityAuthenticationProvider(credential, scopes=[graph_scope(settings.base_url)])
    http_client = _http_client()
    if settings.request_timeout_s is not None:
        http_client.timeout = httpx.Timeout(settings.request_timeout_s)
    hooks: dict[str, list[Any]] = {"request": [], "response": []}
    # Pacing first: the latency measured is Graph's, not our own wait for the rate limits.
    for extra in (
        _pacing_hooks(pacer) if pacer is not None else {},
        _metrics_hooks(metrics) if metrics is not None else {},
    ):
        for event, functions in extra.items():
            hooks[event].extend(functions)
    if hooks["request"] or hooks["response"]:
        http_client.event_hooks = hooks
    adapter = GraphRequestAdapter(auth, client=http_client)
    adapter.base_url = settings.base_url.rstrip("/")
    client = GraphServiceClient(request_adapter=adapter)
    _resources[client] = (http_client, credential)
    return client


def load_graph_models() -> None:
    """Import msgraph-sdk's model modules now. The SDK imports about 1,200 of them the first
    time it parses a response (`Entity.get_field_deserializers`): 1-5 s of blocking imports on
    the event loop, which stall every turn and can cost running jobs their leases. Call it in a
    thread at start-up."""
    from msgraph.generated.models.user import User

    User().get_field_deserializers()


async def close_graph_client(client: GraphServiceClient) -> None:
    """Close the HTTP connections and the credential of a client from build_graph_client."""
    resources = _resources.pop(client, None)
    if resources is None:
        return
    http_client, credential = resources
    await http_client.aclose()
    await credential.close()
