"""The container and the deployment guide, checked by reading them (no Docker engine needed):
the Dockerfile runs as non-root with a health check on /healthz and exec-form CMD, copies every
package the app imports, and docs/deploy.md names every setting."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from settings import ENV_NAMES
from tests.support.node_tools import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
DEPLOY = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
MANIFEST_BUILD_VARIABLES = ("BOT_DOMAIN", "TEAMS_APP_ID", "TEAMS_APP_VERSION", "TEAMS_APP_RSC")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_dockerfile_uses_slim_python_3_11_and_a_non_root_user() -> None:
    steps = instructions()
    assert steps[0][0] == "FROM" and re.match(r"python:3\.11-slim", steps[0][1])
    users = [args for kind, args in steps if kind == "USER"]
    assert users and not users[-1].startswith(("root", "0")), users
    last_user = max(i for i, (kind, _) in enumerate(steps) if kind == "USER")
    assert steps.index(next(s for s in steps if s[0] == "CMD")) > last_user


def test_dockerfile_checks_health_on_healthz_without_curl() -> None:
    (check,) = [args for kind, args in instructions() if kind == "HEALTHCHECK"]
    assert "/healthz" in check and "urllib.request" in check and "curl" not in check


def test_dockerfile_runs_the_app_in_exec_form_listening_on_all_interfaces() -> None:
    steps = instructions()
    (cmd,) = [args for kind, args in steps if kind == "CMD"]
    assert cmd == '["python", "app.py"]'  # exec form: python is PID 1 and gets SIGTERM
    assert any(kind == "ENV" and "HOST=0.0.0.0" in args for kind, args in steps)
    assert any(kind == "EXPOSE" and args == "3978" for kind, args in steps)


def _first_party_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return {n for n in names if (ROOT / n).is_dir() or (ROOT / f"{n}.py").is_file()}


def test_dockerfile_copies_every_package_the_app_imports() -> None:
    copied: set[str] = set()
    for kind, args in instructions():
        if kind == "COPY":
            sources = args.split()[:-1]
            copied |= {source.removesuffix(".py").rstrip("/") for source in sources}
    needed: set[str] = set()
    queue = ["app"]
    while queue:
        name = queue.pop()
        if name in needed:
            continue
        needed.add(name)
        files = [ROOT / f"{name}.py"] if (ROOT / f"{name}.py").is_file() else []
        files += sorted((ROOT / name).rglob("*.py")) if (ROOT / name).is_dir() else []
        for file in files:
            queue.extend(_first_party_imports(file) - needed)
    assert needed <= copied, f"the image lacks {sorted(needed - copied)}"
    assert not {"tests", "tools", "manifest", "node_modules"} & copied


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for entry in (".git", ".venv", "node_modules", "data", ".env", "tests", "build"):
        assert entry in ignored, entry


def test_deploy_guide_names_every_setting_and_the_package_build() -> None:
    for variable in ENV_NAMES.values():
        assert f"`{variable}`" in DEPLOY, f"docs/deploy.md does not document {variable}"
    for variable in MANIFEST_BUILD_VARIABLES:
        assert f"`{variable}`" in DEPLOY, variable
    assert "python -m manifest.build" in DEPLOY
    assert "https://<your host>/api/messages" in DEPLOY
