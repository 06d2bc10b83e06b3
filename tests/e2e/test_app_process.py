"""`python app.py` as a user runs it: dev mode comes up, answers, and stops cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
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
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("Microsoft", "GRAPH_", "BOT_"))
    }
    env.update(PORT=str(port), DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'fc.db'}")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "app.py",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(f"{base}/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("the app did not answer /healthz")
            with ConnectorStandIn() as connector:
                activity = message(
                    "/help",
                    user=ALEX,
                    service_url=connector.service_url,
                    tenant_id="00000000-0000-0000-0000-0000000000f1",
                )
                async with http.post(f"{base}/api/messages", json=activity) as response:
                    assert response.status in (200, 201)
                reply = await connector.wait_for_activity(lambda a: card_of(a) is not None)
                assert "/request" in card_text(card_of(reply))
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 15)
    text = output.decode()
    assert process.returncode == 0, text
    assert "DEV MODE" in text
    assert "Traceback" not in text
