"""Running the Node tools (tools/*.js) from tests: the official Adaptive Cards renderer, the Teams
manifest schema check, Chromium through playwright-core.

Locally a missing `node`, `node_modules` package or Chromium skips the test with the reason;
under `CI=true` it fails the run instead (.ci/run installs all of them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.support.required import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "node_modules"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def require_node(*packages: str) -> str:
    """The `node` executable, after checking that `packages` are installed in node_modules."""
    node = shutil.which("node")
    if node is None:
        skip_or_fail("node is not installed (the Node tools need Node 20+)")
        raise AssertionError("unreachable")
    for package in packages:
        if not (NODE_MODULES / package / "package.json").is_file():
            skip_or_fail(f"node_modules/{package} is missing: run `npm ci` in {ROOT}")
    return node


def require_chromium() -> str:
    """The Chromium executable (CHROMIUM_PATH, else Debian's /usr/bin/chromium)."""
    candidates = [os.environ.get("CHROMIUM_PATH", ""), *CHROMIUM_CANDIDATES]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    skip_or_fail("Chromium is not installed (apt-get install chromium)")
    raise AssertionError("unreachable")


def run_node(
    script: str,
    *args: str,
    stdin: Any = None,
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs `node tools/<script> args...` from the repository root; `stdin` is sent as JSON."""
    node = require_node()
    return subprocess.run(
        [node, str(ROOT / "tools" / script), *args],
        input=None if stdin is None else json.dumps(stdin),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
