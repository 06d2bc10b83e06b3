"""Cheap turns on botbuilder: connector clients reused, no unused token client, replies over a
shared aiohttp session (shared/platform/botbuilder-turn-cost.md).

Upstream `CloudAdapterBase` builds, on *every* turn (and every proactive send):

* a new msrest `ConnectorClient` (a `Configuration`, a pipeline, a `Serializer` and a
  `Deserializer` over all connector models) with new `MicrosoftAppCredentials`, hence a new MSAL
  app with an empty token cache;
* a `TokenApiClient` for the user-token service (OAuth prompts), which this bot never uses;

and sends through msrest's requests-based pipeline: a blocking `requests` call in a thread-pool
thread, on a session owned by that throw-away client (no keep-alive to the Bot Connector), and
the outbound token fetched by MSAL *on the event loop* inside `signed_session`.

`ReusingBotFrameworkAuthentication` wraps the botbuilder authentication the adapter was given
and changes only that:

* `ConnectorClient`s are cached per (credential factory, app id, audience / OAuth scope, login
  endpoint, authority validation, service URL), LRU-bounded. Different bots, audiences or clouds
  never share a client or credentials; a client keeps its credentials and so its MSAL token
  cache.
* their pipeline sends with one `aiohttp.ClientSession` per event loop (`ConnectorTransport`,
  keep-alive) and sets `Authorization: Bearer <token>` exactly when botbuilder's
  `AppCredentials.signed_session` would, fetching the token in a worker thread;
* the user-token client is created on first use (`LazyUserTokenClient`).

Two more per-turn savings live here, used by `FreelanceCloudAdapter` (bot/adapter.py):

* `PlainJsonSerializer`: the cached clients serialize an Adaptive Card (any `object`-typed
  value that is already plain JSON) as it is, instead of msrest's value-by-value walk;
* `ReplyCopyingTurnContext`: outgoing activities are copied shallowly, not deep-copied with
  their whole card, before the conversation reference is stamped on them.

Everything else is botbuilder's own code: the generated operations (URLs, msrest
serialization, `ErrorResponseException` with `.response.status_code` and headers), the
adapter, `TurnContext`. Only `_ConnectorFactoryImpl` from botbuilder is recognised for caching;
any other factory (streaming, custom configurations) is used unchanged.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import os
import ssl
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import aiohttp
from botbuilder.core import TurnContext
from botbuilder.schema import Activity
from botframework.connector import BotFrameworkConnectorConfiguration
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import (
    AppCredentials,
    AuthenticateRequestResult,
    AuthenticationConstants,
    BotFrameworkAuthentication,
    ClaimsIdentity,
    ConnectorFactory,
    UserTokenClient,
)
from botframework.connector.auth._connector_factory_impl import (
    USER_AGENT,
    _ConnectorFactoryImpl,
)
from msrest import Serializer
from msrest.exceptions import ClientRequestError
from msrest.pipeline import Request, Response
from msrest.pipeline.async_abc import AsyncHTTPPolicy, AsyncHTTPSender, AsyncPipeline
from msrest.pipeline.universal import RawDeserializer
from msrest.universal_http import ClientRequest
from msrest.universal_http.async_abc import AsyncClientResponse
from multidict import CIMultiDict

# msrest's default for the requests transport is 100 s; keep the same overall bound and fail
# fast when the connector's host cannot even be reached.
CONNECT_TIMEOUT_S = 15.0
TOTAL_TIMEOUT_S = 100.0
# Teams uses a handful of regional service URLs; bots with many app ids or audiences are rare.
DEFAULT_MAX_CLIENTS = 256


def _ssl_context() -> ssl.SSLContext:
    """Trust the same roots as botbuilder's `requests` transport: REQUESTS_CA_BUNDLE if set,
    else certifi's bundle (what requests uses), else the system's."""
    cafile = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    if not cafile:
        try:
            import certifi

            cafile = certifi.where()
        except ImportError:  # pragma: no cover - certifi comes with requests
            cafile = None
    return ssl.create_default_context(cafile=cafile)


_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


def _proxy_configured() -> bool:
    return any(os.environ.get(name) or os.environ.get(name.upper()) for name in _PROXY_VARIABLES)


class ConnectorTransport:
    """One keep-alive `aiohttp.ClientSession` per event loop, for every cached connector client.

    The session is made on first use in a running loop (aiohttp sessions belong to one loop);
    `close()` closes the current loop's session (bot/http.py calls it on app cleanup).
    """

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ssl: ssl.SSLContext | None = None
        self.sessions_created = 0  # for tests: proves connection reuse across turns

    async def session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is None or session.closed or self._loop is not loop:
            if self._ssl is None:
                # Loading the CA bundle takes tens of milliseconds of CPU: not on the loop.
                self._ssl = await asyncio.to_thread(_ssl_context)
            session = self._session
            if session is not None and not session.closed and self._loop is loop:
                return session  # another turn made it while this one waited
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=100, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(
                    total=TOTAL_TIMEOUT_S, sock_connect=CONNECT_TIMEOUT_S
                ),
                # Proxies from the environment, as requests honours them. Only when one is
                # set: with trust_env aiohttp looks up proxies and .netrc in a worker thread
                # on every request.
                trust_env=_proxy_configured(),
                # msrest sets Accept and Content-Type; add nothing of aiohttp's own.
                skip_auto_headers=("User-Agent",),
            )
            self._session, self._loop = session, loop
            self.sessions_created += 1
        return session

    async def close(self) -> None:
        session, self._session, self._loop = self._session, None, None
        if session is not None and not session.closed:
            await session.close()


class RawConnectorResponse:
    """What msrest's `ErrorResponseException.response` is for a failed call: shaped like the
    `requests.Response` of botbuilder's own transport (`status_code`, `headers`, `reason`,
    `content`, `text`, `json()`), so callers reading `exc.response.status_code` or the
    `Retry-After` header keep working."""

    def __init__(
        self, status: int, reason: str | None, headers: CIMultiDict[str], body: bytes, url: str
    ) -> None:
        self.status_code = self.status = status
        self.reason = reason
        self.headers = headers
        self.content = body
        self.url = url

    @property
    def text(self) -> str:
        return self.content.decode("utf-8-sig", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise ClientRequestError(f"{self.status_code} {self.reason} for url: {self.url}")


class _AiohttpResponse(AsyncClientResponse):
    """An msrest response over a fully read aiohttp response (msrest's own AioHttpClientResponse
    raises on an empty body, which DeleteActivity returns)."""

    def __init__(self, request: ClientRequest, raw: RawConnectorResponse) -> None:
        super().__init__(request, raw)
        self.status_code = raw.status_code
        self.headers = raw.headers
        self.reason = raw.reason

    def body(self) -> bytes:
        content: bytes = self.internal_response.content
        return content

    def raise_for_status(self) -> None:
        self.internal_response.raise_for_status()


_PipelineResponse = Response[ClientRequest, _AiohttpResponse]


class _AiohttpSender(AsyncHTTPSender[ClientRequest, _AiohttpResponse]):
    """The end of the msrest pipeline: send the ClientRequest on the shared session."""

    def __init__(self, transport: ConnectorTransport) -> None:
        self._transport = transport

    async def __aenter__(self) -> _AiohttpSender:
        return self

    async def __aexit__(self, *exc_details: object) -> None:
        return None  # the session outlives every client; ConnectorTransport closes it

    async def send(self, request: Request[ClientRequest], **config: Any) -> _PipelineResponse:
        http_request: ClientRequest = request.http_request
        if http_request.files:
            # No connector operation this bot uses uploads multipart data.
            raise NotImplementedError("multipart requests are not supported")
        try:
            session = await self._transport.session()
            async with session.request(
                http_request.method,
                http_request.url,
                headers=dict(http_request.headers),
                data=http_request.data,
            ) as response:
                raw = RawConnectorResponse(
                    response.status,
                    response.reason,
                    CIMultiDict(response.headers),
                    await response.read(),
                    http_request.url,
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            # What msrest's requests transport raises for connection errors and timeouts;
            # the Notifier treats "no status" as retryable either way.
            raise ClientRequestError(f"Error occurred in request: {exc!r}") from exc
        return Response(request, _AiohttpResponse(http_request, raw))


def should_send_token(credentials: Any) -> bool:
    """`AppCredentials._should_set_token`: no token for an empty app id (auth disabled) or the
    anonymous skill."""
    app_id = getattr(credentials, "microsoft_app_id", None)
    return bool(app_id) and app_id != AuthenticationConstants.ANONYMOUS_SKILL_APP_ID


class _BearerTokenPolicy(AsyncHTTPPolicy[ClientRequest, _AiohttpResponse]):
    """Sets the outbound `Authorization` header as `AppCredentials.signed_session` does, but
    runs the blocking MSAL call (cache lookup, and a token request when it is empty or stale)
    in a worker thread instead of on the event loop."""

    def __init__(self, credentials: AppCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    async def send(self, request: Request[ClientRequest], **kwargs: Any) -> _PipelineResponse:
        headers = request.http_request.headers
        if should_send_token(self._credentials):
            token = await asyncio.to_thread(self._credentials.get_access_token)
            headers["Authorization"] = f"Bearer {token}"
        else:
            headers.pop("Authorization", None)
        assert self.next is not None  # set by AsyncPipeline
        return await self.next.send(request, **kwargs)


def _pipeline(
    transport: ConnectorTransport, config: BotFrameworkConnectorConfiguration
) -> AsyncPipeline[ClientRequest, _AiohttpResponse]:
    """The pipeline of botbuilder's AsyncBfPipeline with our auth policy and sender."""
    policies = [
        config.user_agent_policy,
        _BearerTokenPolicy(config.credentials),
        RawDeserializer(),
        config.http_logger_policy,
    ]
    return AsyncPipeline(policies, _AiohttpSender(transport))


_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _is_plain_json(value: Any) -> bool:
    """Whether `value` is made only of dict (str keys), list, str, int, float, bool, None."""
    kind = type(value)
    if kind in _JSON_SCALARS:
        return True
    if kind is dict:
        return all(type(k) is str and _is_plain_json(v) for k, v in value.items())
    if kind is list:
        return all(_is_plain_json(v) for v in value)
    return False


class PlainJsonSerializer(Serializer):
    """msrest's Serializer, but an `object`-typed value (an attachment's content: the Adaptive
    Card; channelData; an invoke's value) that is already plain JSON is used as it is.

    msrest walks such trees value by value (with an `eval()` per number or bool) to produce an
    equal tree: ~900 calls for the 20-row /status card. Anything else (models, datetimes,
    enums, other types) still goes through msrest."""

    def serialize_object(self, attr: Any, **kwargs: Any) -> Any:
        if _is_plain_json(attr):
            return attr
        return super().serialize_object(attr, **kwargs)  # type: ignore[no-untyped-call]


def new_connector_client(
    credentials: AppCredentials, service_url: str, transport: ConnectorTransport
) -> ConnectorClient:
    """An async ConnectorClient for `service_url` that sends through `transport`."""
    configuration = BotFrameworkConnectorConfiguration(
        credentials,
        service_url,
        pipeline_type=functools.partial(_pipeline, transport),
    )
    client = ConnectorClient(credentials, base_url=service_url, custom_configuration=configuration)
    client.config.add_user_agent(USER_AGENT)
    serializer = PlainJsonSerializer(client._serialize.dependencies)  # type: ignore[no-untyped-call]
    client._serialize = client.conversations._serialize = serializer
    client.attachments._serialize = serializer
    return client


class ConnectorClientCache:
    """ConnectorClients by (credential factory, app id, audience, login endpoint, authority
    validation, service URL), least recently used dropped beyond `max_clients`."""

    def __init__(self, transport: ConnectorTransport, *, max_clients: int = DEFAULT_MAX_CLIENTS):
        self.transport = transport
        self._max = max_clients
        self._clients: OrderedDict[Hashable, ConnectorClient] = OrderedDict()
        self._lock = threading.Lock()  # the cache may be shared by several loops' threads
        self.created = 0

    def __len__(self) -> int:
        return len(self._clients)

    async def get(
        self, key: Hashable, make_credentials: Callable[[], Awaitable[Any]], service_url: str
    ) -> ConnectorClient:
        with self._lock:
            client = self._clients.get(key)
            if client is not None:
                self._clients.move_to_end(key)
                return client
        credentials = await make_credentials()
        client = new_connector_client(credentials, service_url, self.transport)
        with self._lock:
            # Two turns may have raced to build it; keep the first so both share one client.
            client = self._clients.setdefault(key, client)
            self._clients.move_to_end(key)
            self.created += 1
            while len(self._clients) > self._max:
                self._clients.popitem(last=False)
        return client


class CachingConnectorFactory(ConnectorFactory):  # type: ignore[misc]
    """botbuilder's `_ConnectorFactoryImpl.create`, with the client taken from the cache."""

    def __init__(self, inner: _ConnectorFactoryImpl, cache: ConnectorClientCache) -> None:
        self._inner = inner
        self._cache = cache

    async def create(self, service_url: str, audience: str | None = None) -> ConnectorClient:
        inner = self._inner
        scope = audience or inner._to_channel_from_bot_oauth_scope
        key = (
            inner._credential_factory,  # hashed by identity: one per authentication object
            inner._app_id,
            scope,
            inner._login_endpoint,
            inner._validate_authority,
            service_url,
        )

        async def make_credentials() -> Any:
            return await inner._credential_factory.create_credentials(
                inner._app_id, scope, inner._login_endpoint, inner._validate_authority
            )

        return await self._cache.get(key, make_credentials, service_url)


def reusing_factory(factory: Any, cache: ConnectorClientCache) -> Any:
    """`factory` with cached clients, if it is botbuilder's plain one; else `factory`."""
    if (
        type(factory) is _ConnectorFactoryImpl
        and factory._connector_client_configuration is None  # streaming sets its own
    ):
        return CachingConnectorFactory(factory, cache)
    return factory


class LazyUserTokenClient(UserTokenClient):  # type: ignore[misc]
    """The user-token client botbuilder puts in every TurnContext, made on first use.

    Upstream builds a `TokenApiClient` (an msrest client, ~5 ms of CPU) on every turn although
    only OAuth prompts and SSO use it; this bot has neither, but a future one still works."""

    def __init__(self, create: Callable[[], Awaitable[UserTokenClient]]) -> None:
        self._create = create
        self._client: UserTokenClient | None = None

    @property
    def created(self) -> bool:
        return self._client is not None

    async def _real(self) -> UserTokenClient:
        if self._client is None:
            self._client = await self._create()
        return self._client

    async def get_user_token(
        self, user_id: str, connection_name: str, channel_id: str, magic_code: str
    ) -> Any:
        client = await self._real()
        return await client.get_user_token(user_id, connection_name, channel_id, magic_code)

    async def get_sign_in_resource(
        self, connection_name: str, activity: Activity, final_redirect: str
    ) -> Any:
        client = await self._real()
        return await client.get_sign_in_resource(connection_name, activity, final_redirect)

    async def sign_out_user(self, user_id: str, connection_name: str, channel_id: str) -> Any:
        client = await self._real()
        return await client.sign_out_user(user_id, connection_name, channel_id)

    async def get_token_status(self, user_id: str, channel_id: str, include_filter: str) -> Any:
        client = await self._real()
        return await client.get_token_status(user_id, channel_id, include_filter)

    async def get_aad_tokens(
        self, user_id: str, connection_name: str, resource_urls: list[str], channel_id: str
    ) -> Any:
        client = await self._real()
        return await client.get_aad_tokens(user_id, connection_name, resource_urls, channel_id)

    async def exchange_token(
        self,
        user_id: str,
        connection_name: str,
        channel_id: str,
        exchange_request: Any,
    ) -> Any:
        client = await self._real()
        return await client.exchange_token(user_id, connection_name, channel_id, exchange_request)


class ReusingBotFrameworkAuthentication(BotFrameworkAuthentication):  # type: ignore[misc]
    """Delegates to botbuilder's authentication; connector factories reuse cached clients and
    the user-token client is lazy. Other attributes (e.g. `_inner` of
    ConfigurationBotFrameworkAuthentication) are read through from the wrapped object."""

    def __init__(
        self, inner: BotFrameworkAuthentication, cache: ConnectorClientCache | None = None
    ) -> None:
        self.inner = inner
        self.cache = cache or ConnectorClientCache(ConnectorTransport())

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes this wrapper does not have itself.
        if name in ("inner", "cache"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _with_reuse(self, result: AuthenticateRequestResult) -> AuthenticateRequestResult:
        if result is not None and result.connector_factory is not None:
            result.connector_factory = reusing_factory(result.connector_factory, self.cache)
        return result

    async def authenticate_request(
        self, activity: Activity, auth_header: str
    ) -> AuthenticateRequestResult:
        return self._with_reuse(await self.inner.authenticate_request(activity, auth_header))

    async def authenticate_streaming_request(
        self, auth_header: str, channel_id_header: str
    ) -> AuthenticateRequestResult:
        return self._with_reuse(
            await self.inner.authenticate_streaming_request(auth_header, channel_id_header)
        )

    def create_connector_factory(self, claims_identity: ClaimsIdentity) -> ConnectorFactory:
        return reusing_factory(self.inner.create_connector_factory(claims_identity), self.cache)

    async def create_user_token_client(self, claims_identity: ClaimsIdentity) -> UserTokenClient:
        return LazyUserTokenClient(
            functools.partial(self.inner.create_user_token_client, claims_identity)
        )

    def create_bot_framework_client(self) -> Any:
        return self.inner.create_bot_framework_client()

    def get_originating_audience(self) -> str:
        return str(self.inner.get_originating_audience())

    async def authenticate_channel_request(self, auth_header: str) -> ClaimsIdentity:
        return await self.inner.authenticate_channel_request(auth_header)

    async def close(self) -> None:
        await self.cache.transport.close()


class _ShallowlyCopiedActivity(Activity):  # type: ignore[misc]
    """An Activity that `copy.deepcopy` copies shallowly, into a plain Activity."""

    def __deepcopy__(self, memo: dict[int, Any]) -> Activity:
        clone = copy.copy(self)
        clone.__class__ = Activity
        return clone


class ReplyCopyingTurnContext(TurnContext):  # type: ignore[misc]
    """TurnContext whose `send_activities` copies each outgoing activity shallowly.

    Upstream deep-copies every outgoing activity before stamping the conversation reference on
    the copy, which for a card reply copies the whole card (~1,700 objects for the /status
    card). The stamping (`apply_conversation_reference`) only assigns top-level attributes, so a
    shallow copy protects the caller's activity just as well; nothing in the send path mutates
    the card. Activities of other classes are left to upstream's deep copy."""

    async def send_activities(self, activities: list[Activity]) -> Any:
        guarded = []
        for activity in activities:
            if type(activity) is Activity:
                activity = copy.copy(activity)
                activity.__class__ = _ShallowlyCopiedActivity
            guarded.append(activity)
        return await super().send_activities(guarded)
