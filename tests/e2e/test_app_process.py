"""`python app.py` as a user runs it: dev mode comes up, answers, and stops cleanly; SIGTERM
lets running turns finish (their replies reach Teams) within SHUTDOWN_TIMEOUT_S, and no
longer."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp

from tests.e2e.conftest import ALEX
from tests.support.activities import message
from tests.support.cards import card_of, card_text
from tests.support.connector import ConnectorStandIn

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_dev_mode_process_serves_health_and_turns_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    process, base = await start_app(tmp_path)
    try:
        async with aiohttp.ClientSession() as http:
            with ConnectorStandIn() as connector:
                assert await post_help(http, base, connector.service_url) in (200, 201)
                reply = await connector.wait_for_activity(lambda a: card_of(a) is not None)
                assert "/request" in card_text(card_of(reply))
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 15)
    text = output.decode()
    assert process.returncode == 0, text
    assert "DEV MODE" in text
    assert "Traceback" not in text


async def start_app(tmp_path: Path, **env_values: str) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("Microsoft", "GRAPH_", "BOT_"))
    }
    env.update(PORT=str(port), DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'fc.db'}")
    env.update(env_values)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "app.py",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                async with http.get(f"{base}/healthz") as response:
                    if response.status == 200:
                        return process, base
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
    process.kill()
    raise AssertionError("the app did not answer /healthz")


async def post_help(http: aiohttp.ClientSession, base: str, service_url: str) -> int:
    activity = message(
        "/help",
        user=ALEX,
        service_url=service_url,
        tenant_id="00000000-0000-0000-0000-0000000000f1",
    )
    async with http.post(f"{base}/api/messages", json=activity) as response:
        return response.status


async def test_sigterm_lets_a_running_turn_finish_and_its_reply_reach_teams(
    tmp_path: Path,
) -> None:
    with ConnectorStandIn() as connector:
        # The reply takes 1.5 s to post, so the turn is still running when SIGTERM arrives.
        connector.delay("POST", r"/activities", 1.5)
        process, base = await start_app(tmp_path, SHUTDOWN_TIMEOUT_S="10")
        try:
            async with aiohttp.ClientSession() as http:
                turn = asyncio.create_task(post_help(http, base, connector.service_url))
                await asyncio.sleep(0.5)
                assert not turn.done()
                process.send_signal(signal.SIGTERM)
                assert await turn in (200, 201)
                # New requests are no longer accepted while the turn drains.
                try:
                    late = await post_help(http, base, connector.service_url)
                except aiohttp.ClientConnectionError:
                    late = None
                assert late is None
            output, _ = await asyncio.wait_for(process.communicate(), 15)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        replies = [c for c in connector.calls if c.method == "POST" and c.status in (200, 201)]
        assert len(replies) == 1 and "/request" in json.dumps(replies[0].json)
    text = output.decode()
    assert process.returncode == 0, text
    assert "Traceback" not in text


async def test_sigterm_stops_waiting_for_a_turn_after_the_shutdown_timeout(
    tmp_path: Path,
) -> None:
    with ConnectorStandIn() as connector:
        connector.delay("POST", r"/activities", 8)
        process, base = await start_app(tmp_path, SHUTDOWN_TIMEOUT_S="1")
        try:
            async with aiohttp.ClientSession() as http:
                turn = asyncio.create_task(post_help(http, base, connector.service_url))
                await asyncio.sleep(0.5)
                process.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                output, _ = await asyncio.wait_for(process.communicate(), 15)
                stopped_after = time.monotonic() - signalled
                turn.cancel()
                await asyncio.gather(turn, return_exceptions=True)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, output.decode()
    # One second for the turn, the rest for closing down; well before the reply's 8 s.
    assert stopped_after < 6, stopped_after
