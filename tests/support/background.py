"""Run an aiohttp application in a background thread that has its own event loop.

botbuilder talks to the Bot Connector, the OpenID metadata and the token endpoint with blocking
`requests` calls made on the bot's event loop (stack-check 2b, 2c). A stand-in served from that
same loop can never answer and the test hangs, so every stand-in runs here instead.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")


class BackgroundServer:
    """One aiohttp `Application` served on 127.0.0.1 from a daemon thread.

    >>> server = BackgroundServer(app)
    >>> port = server.start()      # blocks until the socket is listening
    >>> server.stop()
    """

    def __init__(
        self,
        app: web.Application,
        *,
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
        name: str = "stand-in",
    ) -> None:
        self._app = app
        self._host = host
        self._ssl_context = ssl_context
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{self._name} is not started")
        return self._port

    def start(self, timeout: float = 10.0) -> int:
        if self._thread is not None:
            raise RuntimeError(f"{self._name} is already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self._setup())
            except BaseException as exc:  # hand start-up failures to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError(f"{self._name} did not start within {timeout} s")
        if failure:
            self._thread = None
            raise RuntimeError(f"{self._name} failed to start") from failure[0]
        return self.port

    async def _setup(self) -> None:
        # access_log=None: the stand-ins record requests themselves; aiohttp's access log
        # would print Authorization-free but noisy lines into every test's captured output.
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, 0, ssl_context=self._ssl_context)
        await site.start()
        address = self._runner.addresses[0]
        self._port = int(address[1])

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run a coroutine on the server's loop from another thread and return its result."""
        if self._loop is None:
            raise RuntimeError(f"{self._name} is not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None or self._loop is None:
            return
        if self._runner is not None:
            self.run(self._runner.cleanup(), timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._thread = None
        self._loop = None
        self._runner = None
        self._port = None
