"""Builds the Teams app package: `python -m manifest.build`.

It writes
- `manifest/manifest.json`, the **reference manifest**: the template filled with placeholder ids,
  committed so that reviews show every change and a test can validate it and catch drift;
- `manifest/color.png` and `manifest/outline.png`, the icons (drawn by manifest/icons.py);
- `build/appPackage/manifest.json` and `build/appPackage.zip` (manifest and icons at the zip's
  root), filled from the environment: the package to upload to Teams.

The bot's command menu (`bots[0].commandLists`) comes from the bot's command registry
(bot/handler.py), one list per set of scopes, within the limits of the manifest version.

Environment (all optional; placeholders make a package that validates but can't be installed):

- `MicrosoftAppId`: `bots[0].botId` and `webApplicationInfo.id` (the Azure Bot's app id);
  placeholder: the all-zero GUID.
- `BOT_DOMAIN`: `validDomains` and `webApplicationInfo.resource`; a host name, no scheme;
  placeholder: `freelance-connector.example.com`.
- `TEAMS_APP_ID`: the manifest `id`, to keep stable across versions; default: a fixed GUID.
- `TEAMS_APP_VERSION`: `version`; default: pyproject.toml's version.
- `TEAMS_APP_DEVELOPER_NAME`: `developer.name` (at most 32 characters).
- `TEAMS_APP_WEBSITE_URL`, `TEAMS_APP_PRIVACY_URL`, `TEAMS_APP_TERMS_URL`: `developer.*Url`
  (https); default: `https://<BOT_DOMAIN>/`, `.../privacy`, `.../terms`.
- `TEAMS_APP_RSC=true`: declare the resource-specific (team) Graph permissions.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tomllib
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, cast

from manifest.icons import write_icons

ROOT = Path(__file__).resolve().parent.parent
MANIFEST_DIR = ROOT / "manifest"
TEMPLATE = MANIFEST_DIR / "template.json"
REFERENCE = MANIFEST_DIR / "manifest.json"
BUILD_DIR = ROOT / "build"
BUILD_COMMAND = "python -m manifest.build"

# The manifest schema version (also in template.json's $schema and manifestVersion). v1.30 is the
# newest that @microsoft/app-manifest bundles (it has no v1.18); it allows 12 commands per list.
SCHEMA_VERSION = "1.30"


@dataclass(frozen=True)
class CommandLimits:
    lists: int  # bots[].commandLists maxItems
    commands: int  # commands per list
    title: int  # command title maxLength
    description: int  # command description maxLength


# Per manifest version; tests/manifest checks these numbers against the bundled JSON schema.
COMMAND_LIMITS: dict[str, CommandLimits] = {
    "1.20": CommandLimits(lists=3, commands=10, title=32, description=128),
    "1.21": CommandLimits(lists=3, commands=10, title=128, description=4000),
    "1.22": CommandLimits(lists=3, commands=10, title=128, description=4000),
    "1.23": CommandLimits(lists=3, commands=10, title=128, description=4000),
    "1.24": CommandLimits(lists=3, commands=12, title=128, description=4000),
    "1.25": CommandLimits(lists=3, commands=12, title=128, description=4000),
    "1.30": CommandLimits(lists=3, commands=12, title=128, description=4000),
}

SCOPES = ("personal", "team", "groupChat")  # the bot's scopes, in the order lists are written

PLACEHOLDER_BOT_ID = "00000000-0000-0000-0000-000000000000"
DEFAULT_TEAMS_APP_ID = "93252eb0-6982-4fd6-ac61-2f03b36b9042"
PLACEHOLDER_DOMAIN = "freelance-connector.example.com"

# Resource-specific consent (granted per team by its owner at install) for the steps that have a
# team-scoped permission. Inviting guests and adding team members have none (graph-teams-facts C7).
RSC_PERMISSIONS = (
    "ChannelSettings.Read.Group",  # list the team's channels
    "Channel.Create.Group",  # create the private channel
    "ChannelMember.ReadWrite.Group",  # list / add private-channel members
    "TeamMember.Read.Group",  # list team members
)

_GUID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_DOMAIN = re.compile(r"^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


class ManifestError(ValueError):
    """The package can't be built; the message says what to change."""


class CommandSpec(Protocol):
    """What the menu needs of a registered command (bot.commands.Command has it)."""

    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def usage(self) -> str: ...
    @property
    def admin_only(self) -> bool: ...
    @property
    def scopes(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class PackageConfig:
    bot_id: str = PLACEHOLDER_BOT_ID
    teams_app_id: str = DEFAULT_TEAMS_APP_ID
    bot_domain: str = PLACEHOLDER_DOMAIN
    version: str = ""
    developer_name: str = "Freelance Connector"
    website_url: str = ""
    privacy_url: str = ""
    terms_url: str = ""
    rsc: bool = False

    @property
    def is_placeholder(self) -> bool:
        return self.bot_id == PLACEHOLDER_BOT_ID or self.bot_domain == PLACEHOLDER_DOMAIN

    def resolved(self) -> PackageConfig:
        """Defaults that depend on other values, then checks every value."""
        base = f"https://{self.bot_domain.removeprefix('*.')}"
        config = replace(
            self,
            version=self.version or project_version(),
            website_url=self.website_url or f"{base}/",
            privacy_url=self.privacy_url or f"{base}/privacy",
            terms_url=self.terms_url or f"{base}/terms",
        )
        config.check()
        return config

    def check(self) -> None:
        problems = []
        if not _GUID.match(self.bot_id):
            problems.append(f"MicrosoftAppId must be a GUID, got {self.bot_id!r}")
        if not _GUID.match(self.teams_app_id):
            problems.append(f"TEAMS_APP_ID must be a GUID, got {self.teams_app_id!r}")
        if not _DOMAIN.match(self.bot_domain):
            problems.append(
                f"BOT_DOMAIN must be a host name such as bot.contoso.com (no https://, no "
                f"path), got {self.bot_domain!r}"
            )
        if not _SEMVER.match(self.version):
            problems.append(f"TEAMS_APP_VERSION must look like 1.2.3, got {self.version!r}")
        if not 0 < len(self.developer_name) <= 32:
            problems.append("TEAMS_APP_DEVELOPER_NAME must have 1 to 32 characters")
        for name, url in (
            ("TEAMS_APP_WEBSITE_URL", self.website_url),
            ("TEAMS_APP_PRIVACY_URL", self.privacy_url),
            ("TEAMS_APP_TERMS_URL", self.terms_url),
        ):
            if not url.startswith("https://"):
                problems.append(f"{name} must be an https:// URL, got {url!r}")
        if problems:
            raise ManifestError("; ".join(problems))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PackageConfig:
        from settings import ENV_NAMES  # the bot's own name for its app id

        env = os.environ if environ is None else environ

        def get(name: str) -> str:
            return env.get(name, "").strip()

        rsc = get("TEAMS_APP_RSC").lower()
        if rsc not in ("", "true", "false", "1", "0", "yes", "no"):
            raise ManifestError(f"TEAMS_APP_RSC must be true or false, got {rsc!r}")
        defaults = cls()
        return cls(
            bot_id=get(ENV_NAMES["app_id"]) or defaults.bot_id,
            teams_app_id=get("TEAMS_APP_ID") or defaults.teams_app_id,
            bot_domain=get("BOT_DOMAIN") or defaults.bot_domain,
            version=get("TEAMS_APP_VERSION"),
            developer_name=get("TEAMS_APP_DEVELOPER_NAME") or defaults.developer_name,
            website_url=get("TEAMS_APP_WEBSITE_URL"),
            privacy_url=get("TEAMS_APP_PRIVACY_URL"),
            terms_url=get("TEAMS_APP_TERMS_URL"),
            rsc=rsc in ("true", "1", "yes"),
        )


def project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


# --- the command menu -------------------------------------------------------------------------


@dataclass(frozen=True)
class Menu:
    command_lists: list[dict[str, Any]]
    left_out: list[str]  # notes about admin commands that did not fit


def registry_commands() -> Sequence[CommandSpec]:
    """The bot's registered commands. The handler needs no database to register them."""
    from bot.handler import FreelanceBot
    from core.clock import SystemClock

    bot = FreelanceBot(service=cast(Any, None), clock=SystemClock(), lifecycle=cast(Any, None))
    return cast(Sequence[CommandSpec], bot.commands.commands)


def menu_entry(command: CommandSpec) -> dict[str, str]:
    """A command as the Teams menu shows it. The title is the bare word (what Teams types into
    the compose box; the bot accepts `request` and `/request` alike)."""
    description = command.description
    if command.usage and command.usage != command.name:
        description = f"{description}. Usage: {command.usage}"
    return {"title": command.name.lstrip("/"), "description": description}


def command_menu(
    commands: Sequence[CommandSpec], limits: CommandLimits = COMMAND_LIMITS[SCHEMA_VERSION]
) -> Menu:
    """`bots[0].commandLists`: for each scope, the commands offered there, everyone's commands
    first, then admin-only ones. Scopes with the same commands share one list.

    Everyone's commands must all fit (else ManifestError). Admin-only commands fill the places
    left; any that do not fit are left out of the menu (they still work when typed, and /help
    lists them for admins) and reported in `left_out`."""
    left_out: list[str] = []
    by_scope: dict[str, list[dict[str, str]]] = {}
    for command in commands:
        unknown = set(command.scopes) - set(SCOPES)
        if unknown:
            raise ManifestError(
                f"command {command.name} has unknown scopes {sorted(unknown)}; "
                f"use {', '.join(SCOPES)}"
            )
        entry = menu_entry(command)
        if len(entry["title"]) > limits.title:
            raise ManifestError(
                f"command {command.name}: the menu title {entry['title']!r} is longer than "
                f"{limits.title} characters (manifest v{SCHEMA_VERSION})"
            )
        if len(entry["description"]) > limits.description:
            raise ManifestError(
                f"command {command.name}: its description is longer than {limits.description} "
                f"characters (manifest v{SCHEMA_VERSION})"
            )
    for scope in SCOPES:
        offered = [c for c in commands if scope in c.scopes]
        everyone = [c for c in offered if not c.admin_only]
        admins = [c for c in offered if c.admin_only]
        if len(everyone) > limits.commands:
            raise ManifestError(
                f"{len(everyone)} commands are offered to everyone in scope {scope!r}, but a "
                f"v{SCHEMA_VERSION} command list holds at most {limits.commands}: "
                f"{', '.join(c.name for c in everyone)}. Offer fewer commands in that scope "
                "(Command.scopes in bot/handler.py)."
            )
        room = limits.commands - len(everyone)
        chosen = everyone + admins[:room]
        if admins[room:]:
            left_out.append(
                f"scope {scope}: admin commands left out of the menu (limit {limits.commands}): "
                + ", ".join(c.name for c in admins[room:])
            )
        if chosen:
            by_scope[scope] = [menu_entry(c) for c in chosen]
    lists: list[dict[str, Any]] = []
    for scope, entries in by_scope.items():
        same = next((cl for cl in lists if cl["commands"] == entries), None)
        if same is not None:
            same["scopes"].append(scope)
        else:
            lists.append({"scopes": [scope], "commands": entries})
    if len(lists) > limits.lists:  # cannot happen with three scopes; kept for other limits
        raise ManifestError(f"{len(lists)} command lists, at most {limits.lists} allowed")
    return Menu(lists, left_out)


# --- the manifest -----------------------------------------------------------------------------


def build_manifest(config: PackageConfig, commands: Sequence[CommandSpec]) -> tuple[Any, Menu]:
    """The manifest (a JSON-ready dict) for `config` and the registry's `commands`."""
    config = config.resolved()
    menu = command_menu(commands)
    authorization: dict[str, Any] | None = None
    if config.rsc:
        authorization = {
            "permissions": {
                "resourceSpecific": [
                    {"name": name, "type": "Application"} for name in RSC_PERMISSIONS
                ]
            }
        }
    values: dict[str, Any] = {
        "APP_VERSION": config.version,
        "TEAMS_APP_ID": config.teams_app_id,
        "DEVELOPER_NAME": config.developer_name,
        "WEBSITE_URL": config.website_url,
        "PRIVACY_URL": config.privacy_url,
        "TERMS_URL": config.terms_url,
        "BOT_ID": config.bot_id,
        "BOT_DOMAIN": config.bot_domain,
        "COMMAND_LISTS": menu.command_lists,
        "AUTHORIZATION": authorization,
    }
    template = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    manifest = _fill(template, values)
    if manifest.get("manifestVersion") != SCHEMA_VERSION:
        raise ManifestError(
            f"template.json says manifestVersion {manifest.get('manifestVersion')!r}, "
            f"build.py expects {SCHEMA_VERSION!r}; change both (and COMMAND_LIMITS)"
        )
    return manifest, menu


def _fill(node: Any, values: Mapping[str, Any]) -> Any:
    """The template with every `${NAME}` replaced. A string that is only a placeholder takes
    the value as is (lists, objects); a None value removes the key."""
    if isinstance(node, dict):
        filled = {key: _fill(value, values) for key, value in node.items()}
        return {key: value for key, value in filled.items() if value is not None}
    if isinstance(node, list):
        return [_fill(item, values) for item in node]
    if isinstance(node, str):
        whole = _PLACEHOLDER.fullmatch(node)
        if whole:
            return _value(whole.group(1), values)
        return _PLACEHOLDER.sub(lambda m: str(_value(m.group(1), values)), node)
    return node


def _value(name: str, values: Mapping[str, Any]) -> Any:
    if name not in values:
        raise ManifestError(f"template.json uses an unknown placeholder ${{{name}}}")
    return values[name]


def manifest_text(manifest: Any) -> str:
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


def reference_manifest_text() -> str:
    """What manifest/manifest.json must hold: the template with placeholders and the registry's
    command menu."""
    manifest, _menu = build_manifest(PackageConfig(), registry_commands())
    return manifest_text(manifest)


def write_package(manifest: Any, icons: Sequence[Path], out_dir: Path) -> Path:
    """build/appPackage/manifest.json and build/appPackage.zip (fixed timestamps, so the same
    input makes the same zip)."""
    folder = out_dir / "appPackage"
    folder.mkdir(parents=True, exist_ok=True)
    text = manifest_text(manifest)
    (folder / "manifest.json").write_text(text, encoding="utf-8")
    zip_path = out_dir / "appPackage.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entries = [("manifest.json", text.encode("utf-8"))]
        entries += [(icon.name, icon.read_bytes()) for icon in icons]
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return zip_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=BUILD_COMMAND, description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument(
        "--out", type=Path, default=BUILD_DIR, help="where appPackage.zip goes (default build/)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="only check that manifest/manifest.json is up to date (exit 1 if not)",
    )
    args = parser.parse_args(argv)
    try:
        commands = registry_commands()
        reference, menu = build_manifest(PackageConfig(), commands)
        if args.check:
            current = REFERENCE.read_text(encoding="utf-8") if REFERENCE.exists() else ""
            if current != manifest_text(reference):
                print(f"{REFERENCE} is out of date: run `{BUILD_COMMAND}`", file=sys.stderr)
                return 1
            print(f"{REFERENCE} is up to date")
            return 0
        config = PackageConfig.from_env()
        package, _ = build_manifest(config, commands)
    except ManifestError as problem:
        print(f"manifest: {problem}", file=sys.stderr)
        return 2
    REFERENCE.write_text(manifest_text(reference), encoding="utf-8")
    icons = write_icons(MANIFEST_DIR)
    zip_path = write_package(package, icons, args.out)
    print(f"wrote {REFERENCE.relative_to(ROOT)} (reference, placeholders) and its icons")
    print(f"wrote {_shown(zip_path)} (manifest v{SCHEMA_VERSION}, bot {config.bot_id})")
    for note in menu.left_out:
        print(f"note: {note}")
    if config.is_placeholder:
        print(
            "note: the package uses placeholders; set MicrosoftAppId and BOT_DOMAIN to build "
            "one you can upload (see docs/deploy.md)"
        )
    return 0


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    raise SystemExit(main())
