"""The bot's aiohttp application: POST /api/messages (the Bot Connector's endpoint) and
GET /healthz.

Status codes on /api/messages: 201 (activity accepted), 200 or the invoke's own status (invoke
responses), 400 (body not JSON / not an activity), 401 (any authentication failure), 413 (body
over MAX_BODY_BYTES), 415 (not application/json), 503 (signing keys unreachable), 500 (the turn
failed and on_turn_error did not handle it). Error bodies are small JSON documents; never a
stack trace.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from aiohttp import web
from botbuilder.core import Bot
from botbuilder.integration.aiohttp import CloudAdapter

from bot.adapter import FreelanceCloudAdapter

logger = logging.getLogger(__name__)

MESSAGES_PATH = "/api/messages"
HEALTH_PATH = "/healthz"
MAX_BODY_BYTES = 1024 * 1024

ADAPTER_KEY = web.AppKey("adapter", FreelanceCloudAdapter)
BOT_KEY = web.AppKey("bot", Bot)


def create_web_app(
    adapter: CloudAdapter,
    bot: Bot,
    *,
    extra_routes: Iterable[web.AbstractRouteDef] | None = None,
) -> web.Application:
    """The aiohttp app that serves `bot` through `adapter`.

    `adapter` must come from `bot.adapter.create_adapter`: a plain CloudAdapter answers bad
    tokens and every invoke with a body with 500 (stack-check 2b, 2e), so it is refused.
    The adapter and bot are available to extra routes as `app[ADAPTER_KEY]`, `app[BOT_KEY]`.
    """
    if not isinstance(adapter, FreelanceCloudAdapter):
        raise TypeError(
            "create_web_app needs the adapter from bot.adapter.create_adapter; a plain "
            "CloudAdapter turns bad tokens and invoke responses into 500s"
        )

    async def messages(request: web.Request) -> web.StreamResponse:
        try:
            return await adapter.process(request, bot)
        except web.HTTPException:
            # Rejections (400/401/415/503) were logged by the adapter and carry JSON bodies.
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

    # Teams' activities stay far below this (a message is at most ~28 KB); a larger body is
    # refused with 413 before it is read into memory.
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[ADAPTER_KEY] = adapter
    app[BOT_KEY] = bot
    app.router.add_post(MESSAGES_PATH, messages)
    app.router.add_get(HEALTH_PATH, healthz)

    async def close_adapter(_app: web.Application) -> None:
        # The keep-alive session to the Bot Connector (bot/connector_fast.py).
        await adapter.close()

    app.on_cleanup.append(close_adapter)
    if extra_routes:
        app.add_routes(extra_routes)
    return app
