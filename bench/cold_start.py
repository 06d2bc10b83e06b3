"""Cold start: from spawning `python app.py` (dev mode, an existing SQLite database) until
GET /healthz answers 200. Prints each run and the median; writes nothing.

    .venv/bin/python bench/cold_start.py [--runs 5]

The first start creates and migrates the database and is not counted; the measured starts find
it in place, as a restart in production would.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_once(database_url: str, limit_s: float = 30.0) -> float:
    """Seconds from spawn to the first 200 from /healthz; the process is stopped after."""
    port = _free_port()
    env = {**os.environ, "PORT": str(port), "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while time.perf_counter() - started < limit_s:
            if process.poll() is not None:
                raise RuntimeError(f"app.py exited with {process.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - started
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.005)
        raise RuntimeError(f"not ready within {limit_s} s")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as directory:
        database_url = f"sqlite+aiosqlite:///{directory}/cold.db"
        first = start_once(database_url)
        print(f"first start (creates the database, not counted): {first:.2f} s")
        times = []
        for run in range(1, args.runs + 1):
            seconds = start_once(database_url)
            times.append(seconds)
            print(f"run {run}: {seconds:.2f} s")
    print(f"median {statistics.median(times):.2f} s, max {max(times):.2f} s")


if __name__ == "__main__":
    main()
