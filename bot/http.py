"""The bot's aiohttp application: POST /api/messages (the Bot Connector's endpoint),
GET /healthz and GET /metrics (Prometheus).

Status codes on /api/messages: 201 (activity accepted), 200 or the invoke's own status (invoke
responses), 400 (body not JSON / not an activity), 401 (any authentication failure), 413 (body
over MAX_BODY_BYTES), 415 (not application/json), 503 (signing keys unreachable), 500 (the turn
failed and on_turn_error did not handle it). Error bodies are small JSON documents; never a
stack trace.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from botbuilder.core import Bot
from botbuilder.integration.aiohttp import CloudAdapter

from bot.adapter import FreelanceCloudAdapter, error_json
from core.log_context import log_scope, new_correlation_id
from core.metrics import CONTENT_TYPE, Metrics

logger = logging.getLogger(__name__)

MESSAGES_PATH = "/api/messages"
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
MAX_BODY_BYTES = 1024 * 1024

ADAPTER_KEY = web.AppKey("adapter", FreelanceCloudAdapter)
BOT_KEY = web.AppKey("bot", Bot)


def create_web_app(
    adapter: CloudAdapter,
    bot: Bot,
    *,
    extra_routes: Iterable[web.AbstractRouteDef] | None = None,
    metrics: Metrics | None = None,
    metrics_access: MetricsAccess | None = None,
) -> web.Application:
    """The aiohttp app that serves `bot` through `adapter`, counting responses into `metrics`
    and serving them at /metrics to whoever `metrics_access` admits (nobody when None).

    `adapter` must come from `bot.adapter.create_adapter`: a plain CloudAdapter answers bad
    tokens and every invoke with a body with 500 (stack-check 2b, 2e), so it is refused.
    The adapter and bot are available to extra routes as `app[ADAPTER_KEY]`, `app[BOT_KEY]`.
    """
    if not isinstance(adapter, FreelanceCloudAdapter):
        raise TypeError(
            "create_web_app needs the adapter from bot.adapter.create_adapter; a plain "
            "CloudAdapter turns bad tokens and invoke responses into 500s"
        )

    metrics = metrics or Metrics()

    async def messages(request: web.Request) -> web.StreamResponse:
        # Every line logged for this request, the adapter's rejections included, carries it.
        with log_scope(correlation_id=new_correlation_id("turn")):
            return await _process(request)

    async def _process(request: web.Request) -> web.StreamResponse:
        try:
            return await adapter.process(request, bot)
        except web.HTTPForbidden:
            # The adapter's only 403: the activity's tenant is not served.
            metrics.refused_activities.inc("tenant")
            raise
        except web.HTTPException:
            # Rejections (400/401/413/415/503) were logged by the adapter and carry JSON bodies.
            raise
        except Exception:
            # Auth succeeded before the turn ran, so this is the bot's own failure (or the
            # connector's), which on_turn_error did not handle: a 500, never a 401. The
            # traceback goes to the log only.
            logger.exception("unhandled error while processing an inbound activity")
            raise web.HTTPInternalServerError(
                text=json.dumps(
                    {
                        "error": {
                            "code": "ServiceError",
                            "message": "The bot failed to process the activity.",
                        }
                    }
                ),
                content_type="application/json",
            ) from None

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def metrics_page(request: web.Request) -> web.Response:
        if metrics_access is None or not metrics_access.admits(request):
            if metrics_access is not None and metrics_access.token:
                raise web.HTTPUnauthorized(
                    text=error_json("Unauthorized", "The request is not authorized."),
                    content_type="application/json",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            raise web.HTTPNotFound(
                text=error_json("NotFound", "Metrics are off: set METRICS_TOKEN."),
                content_type="application/json",
            )
        body = await metrics.render()
        return web.Response(body=body.encode(), headers={"Content-Type": CONTENT_TYPE})

    # Teams' activities stay far below this (a message is at most ~28 KB); a larger body is
    # refused with 413 before it is read into memory.
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_count_responses(metrics)])
    app[ADAPTER_KEY] = adapter
    app[BOT_KEY] = bot
    app.router.add_post(MESSAGES_PATH, messages)
    app.router.add_get(HEALTH_PATH, healthz)
    app.router.add_get(METRICS_PATH, metrics_page)

    async def close_adapter(_app: web.Application) -> None:
        # The keep-alive session to the Bot Connector (bot/connector_fast.py).
        await adapter.close()

    app.on_cleanup.append(close_adapter)
    if extra_routes:
        app.add_routes(extra_routes)
    return app


class MetricsAccess:
    """Who may read /metrics: holders of `token` (a Bearer header); with no token, anyone
    when `open_without_token` (dev mode), else nobody."""

    def __init__(self, token: str = "", *, open_without_token: bool = False) -> None:
        self.token = token
        self._open = open_without_token

    def admits(self, request: web.Request) -> bool:
        if not self.token:
            return self._open
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self.token.encode()
        )


def _count_responses(metrics: Metrics) -> Middleware:
    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        # The route's pattern, never the raw path: a scanner must not create new series.
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            metrics.http_responses.inc(route, str(status))

    return count
