"""Bot Framework adapter set-up: configuration, inbound authentication, and the fixes that
botbuilder-integration-aiohttp 4.17.1 needs (see shared/platform/stack-check.md, 2b and 2e).

`create_adapter(BotAuthConfig(...))` returns a `FreelanceCloudAdapter`, a `CloudAdapter` whose
`process` differs from upstream in three ways:

* It authenticates the request *before* running the turn, as a separate step. Upstream maps
  only `PermissionError` to 401, so expired, badly signed, unknown-key or garbage tokens (and a
  missing header in parameterized mode) surface as 500. Because our auth step is separate, any
  failure in it is a 401, and any exception raised later comes from the bot's own turn logic
  and is never mistaken for an auth failure (the outbound MSAL call, for instance, raises
  `PermissionError` from inside the turn when the bot's secret is wrong).
* It writes invoke responses itself. Upstream serializes `InvokeResponse.body` a second time,
  after `ActivityHandler` has already turned it into a dict, and every invoke with a body
  (adaptiveCard/action, task/fetch, ...) fails with 500.
* It answers bad requests with 400 and a wrong content type with 415, instead of 500 or a
  failed turn: not JSON, not an object, text with a NUL or a lone surrogate, no activity type
  or http(s) serviceUrl, no conversation id or an activity id that cannot go into a reply's URL
  and header, fields (Teams channelData too) that botbuilder cannot read.

It also makes turns cheap (shared/platform/botbuilder-turn-cost.md): its authentication is
wrapped in `ReusingBotFrameworkAuthentication` (bot/connector_fast.py: connector clients reused
per service URL and credentials over one keep-alive aiohttp session, no user-token client
unless used), and it applies the project's monkeypatches (bot/patches.py) when constructed.
`await adapter.close()` closes the outbound HTTP session (bot/http.py does it on app cleanup).

Rejected requests are logged as one line with the reason; tokens and secrets never are.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from http import HTTPStatus
from types import SimpleNamespace
from typing import Any, NoReturn

import requests
from aiohttp import web
from aiohttp.web_ws import WebSocketResponse
from botbuilder.core import Bot, InvokeResponse, TurnContext, serializer_helper
from botbuilder.integration.aiohttp import (
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
)
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    AdaptiveCardInvokeResponse,
    CallerIdConstants,
)
from botbuilder.schema.teams import TeamsChannelData
from botframework.connector.auth import (
    AuthenticateRequestResult,
    AuthenticationConstants,
    BotFrameworkAuthentication,
)
from msrest.serialization import Model

from bot import patches
from bot.connector_fast import ReplyCopyingTurnContext, ReusingBotFrameworkAuthentication
from bot.conversations import TEAMS_CHANNEL_ID, tenant_id

logger = logging.getLogger(__name__)

# The values of MicrosoftAppType; `BotAuthConfig.app_type` is a plain str (it comes from settings)
# and is checked against these at construction.
APP_TYPES: tuple[str, ...] = ("MultiTenant", "SingleTenant", "UserAssignedMSI")

APOLOGY_TEXT = "Sorry, something went wrong on my side. Please try again in a moment."

# The content type Teams expects for an error answer to an adaptiveCard/action invoke
# (graph-teams-facts C1).
_ADAPTIVE_CARD_ERROR_TYPE = "application/vnd.microsoft.error"


@dataclass(frozen=True)
class BotAuthConfig:
    """How the bot authenticates to and from the Bot Connector.

    An empty `app_id` disables authentication (dev mode, the Agents Playground): inbound
    requests are not checked and outbound calls carry no token.

    `openid_metadata_url` replaces the channel's OpenID metadata document
    (BOT_OPENID_METADATA_URL; sovereign clouds and tests). `channel_login_url` replaces the
    authority the outbound token is requested from (TO_CHANNEL_FROM_BOT_LOGIN_URL), for example
    `https://127.0.0.1:P/adfs` in tests; it is used as given, so include the tenant.
    """

    app_id: str = ""
    # repr=False: the dataclass repr ends up in logs and tracebacks; the secret must not.
    app_password: str = field(default="", repr=False)
    app_type: str = "MultiTenant"  # one of APP_TYPES
    app_tenant_id: str = ""
    openid_metadata_url: str | None = None
    channel_login_url: str | None = None

    def __post_init__(self) -> None:
        if self.app_type not in APP_TYPES:
            raise ValueError(f"app_type must be one of {', '.join(APP_TYPES)}")
        if not self.auth_enabled:
            return
        # Fail at start-up rather than on the first outbound call in production.
        if self.app_type in ("SingleTenant", "UserAssignedMSI") and not self.app_tenant_id:
            raise ValueError(f"app_type {self.app_type} needs app_tenant_id")
        if self.app_type != "UserAssignedMSI" and not self.app_password:
            raise ValueError(f"app_type {self.app_type} needs app_password")
        if self.channel_login_url and not self.channel_login_url.startswith("https://"):
            # MSAL refuses a non-https authority, but only at the first outbound call.
            raise ValueError("channel_login_url must be an https:// URL")
        if self.openid_metadata_url and not self.openid_metadata_url.startswith(
            ("https://", "http://")
        ):
            raise ValueError("openid_metadata_url must be an http(s) URL")

    @property
    def auth_enabled(self) -> bool:
        return bool(self.app_id)


class InboundAuthError(Exception):
    """The inbound request failed authentication. `reason` is safe to log (never the token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AuthMetadataUnavailable(Exception):
    """The OpenID metadata or signing keys could not be fetched: our problem, not the caller's."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _settings_for(config: BotAuthConfig) -> SimpleNamespace:
    """The attribute bag `ConfigurationBotFrameworkAuthentication` reads with getattr."""
    if not config.auth_enabled:
        # Parameterized settings must not be used with an empty app id: that mode turns a
        # request without Authorization header into a 500 (stack-check 2b, "Other quirks").
        return SimpleNamespace(APP_ID="", APP_PASSWORD="", APP_TYPE="MultiTenant")
    settings = SimpleNamespace(
        APP_ID=config.app_id,
        APP_PASSWORD=config.app_password,
        APP_TYPE=config.app_type,
        APP_TENANTID=config.app_tenant_id,
    )
    if config.openid_metadata_url or config.channel_login_url:
        # Any of these attributes switches botbuilder to its parameterized authentication, which
        # then takes every value from here, so fill in the public-cloud defaults for the rest.
        settings.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL = (
            config.openid_metadata_url
            or AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL
        )
        settings.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL = (
            AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL
        )
        settings.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER = (
            AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER
        )
        settings.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE = (
            AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE
        )
        settings.OAUTH_URL = AuthenticationConstants.OAUTH_URL
        settings.CALLER_ID = CallerIdConstants.public_azure_channel
        # The public prefix makes botbuilder build the authority from the tenant (SingleTenant)
        # or botframework.com (MultiTenant), exactly as the public-cloud default does.
        settings.TO_CHANNEL_FROM_BOT_LOGIN_URL = (
            config.channel_login_url
            or AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL_PREFIX
        )
        settings.VALIDATE_AUTHORITY = not config.channel_login_url
    return settings


def error_json(code: str, message: str) -> str:
    """The small JSON error body (Teams' shape) every refused request gets."""
    return json.dumps({"error": {"code": code, "message": message}})


def _reject(
    exc_class: type[web.HTTPException],
    code: str,
    message: str,
    *,
    log_reason: str,
    headers: dict[str, str] | None = None,
) -> NoReturn:
    """Log one line for the rejected request and raise the aiohttp error with a JSON body."""
    logger.warning(
        "rejected inbound request: status=%s reason=%s", exc_class.status_code, log_reason
    )
    raise exc_class(
        text=error_json(code, message), content_type="application/json", headers=headers
    )


def _describe_auth_failure(exc: BaseException) -> str:
    """A short, log-safe description of why botbuilder's auth step failed."""
    name = type(exc).__name__
    if isinstance(exc, PermissionError):
        # botbuilder's own fixed messages ("Invalid 'serviceurl' claim", "Invalid AppId passed
        # on token: <app id>"); they name claims, never the token. Cut and repr'd because the
        # app id part comes from the caller.
        return f"{name}: {str(exc)[:120]!r}"
    return name


def invoke_response_to_http(invoke_response: InvokeResponse | None) -> web.Response:
    """Write the turn's result: 201 without an invoke response, else its status and body.

    botbuilder's CloudAdapter calls `serializer_helper` on a body that `ActivityHandler` has
    already serialized to a dict; msrest then fails with "'dict' object has no attribute
    'is_xml_model'" and every invoke with a body becomes a 500 (stack-check 2e; teams-sdk
    #2547). Here a body is serialized only if it is still an msrest model.
    """
    if invoke_response is None:
        return web.Response(status=HTTPStatus.CREATED)
    status = int(invoke_response.status or HTTPStatus.OK)
    body: Any = invoke_response.body
    if body is None:
        return web.Response(status=status)
    if isinstance(body, AdaptiveCardInvokeResponse) and isinstance(body.value, Exception):
        # ActivityHandler answers a malformed Action.Execute with 400 and the error as an
        # Exception(code, message), which msrest cannot serialize: that 400 became a 500.
        code, message, *_ = [*body.value.args, "BadRequest", ""]
        body = {
            "statusCode": status,
            "type": body.type,
            "value": {"code": str(code), "message": str(message)},
        }
    if isinstance(body, Model):
        body = serializer_helper(body)
    return web.json_response(body, status=status)


# botbuilder ships no type information, so mypy sees CloudAdapter as Any.
class FreelanceCloudAdapter(CloudAdapter):  # type: ignore[misc]
    """CloudAdapter with a separate, total auth step and a correct invoke-response writer."""

    def __init__(
        self,
        bot_framework_authentication: BotFrameworkAuthentication,
        *,
        auth_enabled: bool,
        allowed_tenant_ids: frozenset[str] = frozenset(),
    ) -> None:
        patches.apply()
        if not isinstance(bot_framework_authentication, ReusingBotFrameworkAuthentication):
            bot_framework_authentication = ReusingBotFrameworkAuthentication(
                bot_framework_authentication
            )
        super().__init__(bot_framework_authentication)
        self.auth_enabled = auth_enabled
        # Empty: every tenant. Otherwise activities from other tenants (or none) are refused
        # before any handler runs, and counted here.
        self.allowed_tenant_ids = allowed_tenant_ids
        self.tenant_refusals = 0

    @property
    def connector_clients(self) -> Any:
        """The cache of outbound connector clients (`ConnectorClientCache`)."""
        return self.bot_framework_authentication.cache

    def _create_turn_context(self, *args: Any, **kwargs: Any) -> TurnContext:
        # Every turn (inbound, continue_conversation, create_conversation) gets a context that
        # copies outgoing activities shallowly (bot/connector_fast.py).
        context = super()._create_turn_context(*args, **kwargs)
        if type(context) is TurnContext:
            context.__class__ = ReplyCopyingTurnContext
        return context

    async def close(self) -> None:
        """Close the keep-alive session to the Bot Connector (it is reopened if needed)."""
        await self.bot_framework_authentication.close()

    async def authenticate(
        self, activity: Activity, auth_header: str | None
    ) -> AuthenticateRequestResult:
        """Validate the inbound request, or raise `InboundAuthError` / `AuthMetadataUnavailable`.

        Only botbuilder's auth step runs inside this method, so every exception it raises is
        about the request's credentials: `PermissionError`, `jwt.PyJWTError`, the
        `AttributeError`/`IndexError`/`KeyError` of its token extractor, and the bare
        `Exception` it raises for a failed endorsement check.
        """
        if not self.auth_enabled:
            # With auth disabled, botbuilder would still try to validate a header that happens
            # to be present, against the public cloud's keys. Nothing is checked in this mode.
            return await self.bot_framework_authentication.authenticate_request(activity, None)
        token = _bearer_token(auth_header)
        try:
            # botbuilder compares the scheme case-sensitively; RFC 7235 says it is not.
            return await self.bot_framework_authentication.authenticate_request(
                activity, f"Bearer {token}"
            )
        except requests.RequestException as exc:
            # Fetching the OpenID metadata or the keys failed (botbuilder uses requests).
            raise AuthMetadataUnavailable(type(exc).__name__) from exc
        except Exception as exc:
            raise InboundAuthError(_describe_auth_failure(exc)) from exc

    def _check_tenant(self, activity: Activity) -> None:
        """Refuse (403) an activity from a tenant the app does not serve. Any Teams tenant can
        install a multi-tenant bot or message it, and a valid token says only that the Bot
        Connector sent the request, not for which organisation."""
        if not self.allowed_tenant_ids:
            return
        tenant = tenant_id(activity)
        if tenant in self.allowed_tenant_ids:
            return
        self.tenant_refusals += 1
        _reject(
            web.HTTPForbidden,
            "Forbidden",
            "This app is not available to your organisation.",
            log_reason=f"tenant {tenant[:64]!r} is not allowed",
        )

    async def process(
        self, request: web.Request, bot: Bot, ws_response: WebSocketResponse | None = None
    ) -> web.Response:
        """Handle one POST of an activity; raise aiohttp HTTP errors for rejected requests.

        Exceptions from the bot's turn logic that `on_turn_error` does not handle propagate
        unchanged (the caller answers 500); they are never turned into a 401.
        """
        if request.method != "POST":
            # Teams never uses the streaming (web socket) transport upstream supports here.
            raise web.HTTPMethodNotAllowed(request.method, ["POST"])
        auth_header = request.headers.get("Authorization")
        if self.auth_enabled:
            # A request without a Bearer token is refused before its body is read, so that a
            # caller without credentials learns nothing from 400/415 about what the body lacks.
            try:
                _bearer_token(auth_header)
            except InboundAuthError as exc:
                _reject_unauthorized(exc)
        activity = await _read_activity(request)
        try:
            auth_result = await self.authenticate(activity, auth_header)
        except InboundAuthError as exc:
            _reject_unauthorized(exc)
        except AuthMetadataUnavailable as exc:
            logger.error("cannot fetch the Bot Framework signing keys: %s", exc.reason)
            _reject(
                web.HTTPServiceUnavailable,
                "ServiceUnavailable",
                "The request cannot be authenticated right now.",
                log_reason=f"signing keys unavailable ({exc.reason})",
            )
        self._check_tenant(activity)
        invoke_response = await self.process_activity(auth_result, activity, bot.on_turn)
        return invoke_response_to_http(invoke_response)


def _bearer_token(auth_header: str | None) -> str:
    """The token of a well-formed `Bearer <token>` header, or `InboundAuthError`."""
    if not auth_header:
        raise InboundAuthError("missing Authorization header")
    scheme, _, token = auth_header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise InboundAuthError("Authorization header is not a Bearer token")
    return token


def _reject_unauthorized(exc: InboundAuthError) -> NoReturn:
    _reject(
        web.HTTPUnauthorized,
        "Unauthorized",
        "The request is not authorized.",
        log_reason=exc.reason,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def _read_activity(request: web.Request) -> Activity:
    content_type = request.content_type
    if content_type != "application/json" and not content_type.endswith("+json"):
        _reject(
            web.HTTPUnsupportedMediaType,
            "UnsupportedMediaType",
            "Expected an application/json body.",
            log_reason=f"content type {content_type[:60]!r}",
        )
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as too_large:
        logger.warning("rejected inbound request: status=413 reason=body over the size limit")
        raise web.HTTPRequestEntityTooLarge(
            max_size=request.client_max_size,
            actual_size=request.content_length or 0,
            text=error_json("RequestTooLarge", "The body is too large."),
            content_type="application/json",
        ) from too_large
    try:
        text = raw.decode("utf-8")
        body = json.loads(text)
    except ValueError:  # also UnicodeDecodeError
        _reject(web.HTTPBadRequest, "BadArgument", "The body is not JSON.", log_reason="not JSON")
    if not isinstance(body, dict):
        _reject(
            web.HTTPBadRequest,
            "BadArgument",
            "The body is not a JSON object.",
            log_reason="not a JSON object",
        )
    if _UNSTORABLE_ESCAPE.search(text) and not _is_storable(body):
        # JSON allows "\ud800" alone and "\u0000", but no UTF-8 encoder takes the first and
        # PostgreSQL stores neither: every write or reply of such a text would fail the turn.
        _reject(
            web.HTTPBadRequest,
            "BadArgument",
            "The body has a NUL character or a lone surrogate (half of a UTF-16 character).",
            log_reason="NUL or lone surrogate",
        )
    if not isinstance(body.get("type"), str) or not body["type"]:
        _reject(
            web.HTTPBadRequest,
            "BadArgument",
            "The activity has no type.",
            log_reason="activity without type",
        )
    service_url = body.get("serviceUrl")
    if not isinstance(service_url, str) or not service_url.lower().startswith(
        ("https://", "http://")
    ):
        # botbuilder checks the token's serviceurl claim only when the activity has a
        # serviceUrl, and a turn without one cannot reply anyway.
        _reject(
            web.HTTPBadRequest,
            "BadArgument",
            "The activity has no serviceUrl.",
            log_reason="activity without serviceUrl",
        )
    conversation = body.get("conversation")
    conversation_id = conversation.get("id") if isinstance(conversation, dict) else None
    if not _is_usable_id(conversation_id):
        # Every reply names the conversation in its URL and in a header.
        _reject(
            web.HTTPBadRequest,
            "BadArgument",
            "The activity has no conversation id.",
            log_reason="activity without conversation id",
        )
    if body.get("id") not in (None, "") and not _is_usable_id(body["id"]):
        # A reply names the activity it answers in its URL.
        _reject(
            web.HTTPBadRequest,
            "BadArgument",
            "The activity id is not usable.",
            log_reason="unusable activity id",
        )
    try:
        activity = Activity().deserialize(body)
        if activity.channel_id == TEAMS_CHANNEL_ID:
            # Read by botbuilder's Teams handler for some activity types; ill-typed, it fails
            # the turn there.
            TeamsChannelData().deserialize(activity.channel_data)
    except Exception:  # msrest raises several types for ill-typed fields; all are bad input
        _reject(
            web.HTTPBadRequest,
            "BadArgument",
            "The body is not an activity.",
            log_reason="not an activity",
        )
    return activity


# Teams' ids (conversations, activities) are machine values of up to a few hundred characters;
# these limits keep a reply's URL and its x-ms-conversation-id header valid whatever the caller
# sent.
MAX_ID_LENGTH = 1024
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
# Only an escape can put a NUL or a lone surrogate into a string that json.loads returns.
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:[dD][89a-fA-F]|0000)")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _is_usable_id(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ID_LENGTH
        and not _CONTROL_CHARACTERS.search(value)
    )


def _is_storable(value: object) -> bool:
    """No NUL character and no lone surrogate in any string (key or value) of `value`."""
    if isinstance(value, str):
        return "\x00" not in value and not _LONE_SURROGATE.search(value)
    if isinstance(value, dict):
        return all(_is_storable(k) and _is_storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_storable(v) for v in value)
    return True


def _invoke_error_response(activity: Activity) -> InvokeResponse:
    if activity.name == "adaptiveCard/action":
        # Universal Actions define an error body; Teams shows its own "something went wrong".
        return InvokeResponse(
            status=HTTPStatus.INTERNAL_SERVER_ERROR,
            body={
                "statusCode": int(HTTPStatus.INTERNAL_SERVER_ERROR),
                "type": _ADAPTIVE_CARD_ERROR_TYPE,
                "value": {"code": "InternalError", "message": "The action failed."},
            },
        )
    return InvokeResponse(status=HTTPStatus.INTERNAL_SERVER_ERROR)


async def on_turn_error(context: TurnContext, error: Exception) -> None:
    """Log a failed turn and tell the user in a way that fits the activity.

    Messages get a short apology in the conversation. Invokes get a 500 invoke response;
    without one botbuilder would answer 501 Not Implemented, which hides the failure. Other
    activities (conversation updates, proactive turns) are only logged.
    """
    activity = context.activity
    logger.error(
        "turn failed: activity type=%s name=%s id=%s",
        activity.type,
        activity.name,
        activity.id,
        exc_info=error,
    )
    try:
        if activity.type == ActivityTypes.message:
            await context.send_activity(APOLOGY_TEXT)
        elif activity.type == ActivityTypes.invoke:
            await context.send_activity(
                Activity(
                    type=ActivityTypes.invoke_response, value=_invoke_error_response(activity)
                )
            )
    except Exception as send_error:
        # Often the same cause (connector down, outbound token refused); the turn's error is
        # logged above, so one line is enough here.
        logger.warning(
            "could not tell the user that the turn failed: %s", type(send_error).__name__
        )


def create_adapter(
    config: BotAuthConfig, *, allowed_tenant_ids: frozenset[str] = frozenset()
) -> FreelanceCloudAdapter:
    """The project's CloudAdapter for `config`, with `on_turn_error` set, serving only
    `allowed_tenant_ids` (every tenant when empty)."""
    authentication = ConfigurationBotFrameworkAuthentication(_settings_for(config))
    adapter = FreelanceCloudAdapter(
        authentication, auth_enabled=config.auth_enabled, allowed_tenant_ids=allowed_tenant_ids
    )
    adapter.on_turn_error = on_turn_error
    return adapter
