"""The browser test's rig: the tools it needs, the bot in dev mode on a real port, and Agents
Playground processes started from node_modules (and stopped by PID, whatever happens)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import aiohttp
from aiohttp import web

from app import COMPONENTS, Components, build_app
from settings import Settings
from tests.support.node_tools import require_chromium, require_node

ROOT = Path(__file__).resolve().parents[2]
PLAYGROUND_CLI = ROOT / "node_modules" / "@microsoft" / "m365agentsplayground" / "cli.js"
DRIVER = ROOT / "tools" / "playground_e2e.mjs"


@dataclass(frozen=True)
class Tools:
    node: str
    chromium: str


def find_tools() -> Tools:
    """The tools the test needs; skips locally (fails under CI=true) when one is missing."""
    node = require_node("@microsoft/m365agentsplayground", "playwright-core")
    return Tools(node=node, chromium=require_chromium())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningBot:
    url: str
    components: Components

    @property
    def endpoint(self) -> str:
        return f"{self.url}/api/messages"


@contextlib.asynccontextmanager
async def running_bot(settings: Settings) -> AsyncIterator[RunningBot]:
    """`build_app` (dev mode when `settings` has no credentials) served on 127.0.0.1."""
    app = await build_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", settings.port)
        await site.start()
        port = runner.addresses[0][1]
        yield RunningBot(f"http://127.0.0.1:{port}", app[COMPONENTS])
    finally:
        await runner.cleanup()


@dataclass
class Playground:
    who: str
    port: int  # the one asked for until `wait_until_listening` reads the real one
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""


def start_playground(
    tools: Tools, *, who: str, port: int, config: Path, bot_endpoint: str, workdir: Path
) -> Playground:
    """One Agents Playground process (one signed-in person) from node_modules."""
    log_path = workdir / f"playground-{who}.log"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("M365_AGENTS_PLAYGROUND_", "TEAMSAPPTESTER_", "TEAMS_APP_TEST"))
    }
    env.update(
        # Without it the Playground tries to open a browser (xdg-open) and exits.
        TEAMSAPPTESTER_BROWSER="none",
        M365_AGENTS_PLAYGROUND_CONFIG_PATH=str(config),
        M365_AGENTS_PLAYGROUND_LOGFILE=str(log_path),
    )
    stdout: IO[bytes] = (workdir / f"playground-{who}.out").open("wb")
    with stdout:
        command = [tools.node, str(PLAYGROUND_CLI), "-e", bot_endpoint, "-c", "msteams"]
        process = subprocess.Popen(
            [*command, "-p", str(port), "--dt"],
            cwd=workdir,  # its devTools/ folder lands here, not in the repository
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
        )
    return Playground(who, port, process, log_path)


# A busy port is not an error for the Playground: it logs "Port N is already in use. Finding
# an available port..." and listens elsewhere. So the port is read from its log.
_LISTENING = re.compile(r"Listening on (\d+)")


async def wait_until_listening(
    http: aiohttp.ClientSession, playground: Playground, within_s: float
) -> None:
    deadline = time.monotonic() + within_s
    while True:
        if playground.process.poll() is not None:
            raise AssertionError(
                f"the {playground.who} Playground exited with {playground.process.returncode}:"
                f"\n{playground.log()[-3000:]}"
            )
        listening = _LISTENING.search(playground.log())
        if listening:
            playground.port = int(listening.group(1))
            try:
                async with http.get(f"{playground.url}/_internal/v1/config") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
        if time.monotonic() > deadline:
            raise AssertionError(
                f"the {playground.who} Playground did not listen within {within_s} s:\n"
                f"{playground.log()[-3000:]}"
            )
        await asyncio.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM this one process, SIGKILL it if it does not go."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout)
