"""The reference for bench/turns.py: a bare botbuilder echo bot (CloudAdapter, auth disabled),
exactly as the Bot Framework samples set it up and with none of the project's fixes or patches.

    python bench/echo_bot.py PORT

Serves POST /api/messages (echoes each message's text) and GET /healthz on 127.0.0.1:PORT.
It imports nothing from the project, so bot/patches.py cannot speed it up.
"""

from __future__ import annotations

import logging
import sys

from aiohttp import web
from botbuilder.core import ActivityHandler, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication


class _Config:
    APP_ID = ""
    APP_PASSWORD = ""
    APP_TYPE = "MultiTenant"


class EchoBot(ActivityHandler):  # type: ignore[misc]
    async def on_message_activity(self, turn_context: TurnContext) -> None:
        await turn_context.send_activity(f"echo: {turn_context.activity.text}")


def make_app() -> web.Application:
    adapter = CloudAdapter(ConfigurationBotFrameworkAuthentication(_Config()))
    bot = EchoBot()

    async def messages(request: web.Request) -> web.StreamResponse:
        response: web.StreamResponse = await adapter.process(request, bot)
        return response

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/api/messages", messages)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 3978
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("msrest.serialization").setLevel(logging.ERROR)
    web.run_app(make_app(), host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
