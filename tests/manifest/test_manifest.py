"""The Teams app package: the committed reference manifest matches the build, validates against
the official schema bundled in @microsoft/app-manifest (offline), its command menu comes from the
command registry within the version's limits, and the icons are what Teams asks for."""

from __future__ import annotations

import difflib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from manifest import build
from manifest.build import (
    BUILD_COMMAND,
    COMMAND_LIMITS,
    REFERENCE,
    SCHEMA_VERSION,
    CommandLimits,
    ManifestError,
    PackageConfig,
    build_manifest,
    command_menu,
    registry_commands,
)
from manifest.icons import COLOR_SIZE, OUTLINE_SIZE, color_pixels, outline_pixels, read_png
from tests.support.node_tools import NODE_MODULES, require_node, run_node
from tests.support.required import skip_or_fail

SCHEMAS = NODE_MODULES / "@microsoft" / "app-manifest" / "build" / "json-schemas" / "teams"
REAL_BOT_ID = "5f0c3c57-2a4f-4f5e-9d3b-1b0f7d8e9a21"
REAL_ENV = {
    "MicrosoftAppId": REAL_BOT_ID,
    "BOT_DOMAIN": "freelance.contoso.com",
    "TEAMS_APP_ID": "0d9d4d3e-7b8a-4c55-8f1e-2a3b4c5d6e7f",
    "TEAMS_APP_VERSION": "1.4.2",
    "TEAMS_APP_DEVELOPER_NAME": "Contoso IT",
    "TEAMS_APP_RSC": "true",
}


def validate(*files: Path) -> list[dict[str, Any]]:
    """The official schema check (tools/validate_manifest.js) of each file."""
    require_node("@microsoft/app-manifest", "ajv-draft-04", "ajv-formats")
    result = run_node("validate_manifest.js", *map(str, files))
    assert result.returncode in (0, 1), result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def bundled_schema(version: str) -> dict[str, Any]:
    path = SCHEMAS / f"v{version}" / "MicrosoftTeams.schema.json"
    if not path.is_file():
        skip_or_fail(f"{path} is missing: run `npm ci`")
    return dict(json.loads(path.read_text(encoding="utf-8")))


# --- the committed manifest -------------------------------------------------------------------


def test_committed_manifest_matches_the_build() -> None:
    expected = build.reference_manifest_text()
    current = REFERENCE.read_text(encoding="utf-8") if REFERENCE.exists() else ""
    if current != expected:
        diff = "".join(
            difflib.unified_diff(
                current.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                "manifest/manifest.json (committed)",
                "manifest/manifest.json (built now)",
            )
        )
        pytest.fail(
            "manifest/manifest.json is out of date (the command registry or the template "
            f"changed). Run `{BUILD_COMMAND}` from the repository root and commit "
            f"manifest/manifest.json.\n{diff}",
            pytrace=False,
        )


def test_committed_manifest_passes_the_official_schema() -> None:
    (report,) = validate(REFERENCE)
    assert report["errors"] == [], "\n".join(report["errors"])
    assert report["schema"].endswith(f"/v{SCHEMA_VERSION}/MicrosoftTeams.schema.json")


def test_the_schema_check_reports_a_broken_manifest(tmp_path: Path) -> None:
    broken = json.loads(REFERENCE.read_text(encoding="utf-8"))
    broken["accentColor"] = "blue"
    del broken["version"]
    broken["bots"][0]["scopes"] = ["everywhere"]
    broken["bots"][0]["commandLists"][0]["commands"] *= 13
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(broken), encoding="utf-8")
    (report,) = validate(path)
    errors = "\n".join(report["errors"])
    assert "must have required property 'version'" in errors
    assert "/accentColor must match pattern" in errors
    assert "/bots/0/scopes/0 must be equal to one of the allowed values" in errors
    assert "/bots/0/commandLists/0/commands must NOT have more than 12 items" in errors


def test_template_uses_a_schema_version_the_package_bundles() -> None:
    manifest = json.loads(REFERENCE.read_text(encoding="utf-8"))
    assert manifest["manifestVersion"] == SCHEMA_VERSION
    assert manifest["$schema"] == (
        "https://developer.microsoft.com/en-us/json-schemas/teams/"
        f"v{SCHEMA_VERSION}/MicrosoftTeams.schema.json"
    )
    schema = bundled_schema(SCHEMA_VERSION)
    assert schema["properties"]["manifestVersion"]["const"] == SCHEMA_VERSION


@pytest.mark.parametrize("version", sorted(COMMAND_LIMITS))
def test_command_limits_are_the_bundled_schemas(version: str) -> None:
    schema = bundled_schema(version)
    lists = schema["properties"]["bots"]["items"]["properties"]["commandLists"]
    command = lists["items"]["properties"]["commands"]
    props = command["items"]["properties"]
    assert COMMAND_LIMITS[version] == CommandLimits(
        lists=lists["maxItems"],
        commands=command["maxItems"],
        title=props["title"]["maxLength"],
        description=props["description"]["maxLength"],
    )


def test_reference_manifest_holds_placeholders_and_the_bot_settings() -> None:
    manifest = json.loads(REFERENCE.read_text(encoding="utf-8"))
    (bot,) = manifest["bots"]
    assert bot["botId"] == build.PLACEHOLDER_BOT_ID
    assert bot["scopes"] == ["personal", "team", "groupChat"]
    assert manifest["webApplicationInfo"]["id"] == build.PLACEHOLDER_BOT_ID
    assert manifest["validDomains"] == [build.PLACEHOLDER_DOMAIN]
    assert manifest["supportedChannelTypes"] == ["privateChannels"]
    assert manifest["version"] == build.project_version()
    assert manifest["icons"] == {"color": "color.png", "outline": "outline.png"}
    assert "authorization" not in manifest  # RSC only when asked for


# --- the package built from the environment ---------------------------------------------------


def test_package_from_the_environment_is_a_valid_zip(tmp_path: Path) -> None:
    config = PackageConfig.from_env(REAL_ENV)
    manifest, _menu = build_manifest(config, registry_commands())
    icons = [build.MANIFEST_DIR / "color.png", build.MANIFEST_DIR / "outline.png"]
    zip_path = build.write_package(manifest, icons, tmp_path)

    with zipfile.ZipFile(zip_path) as archive:
        assert sorted(archive.namelist()) == ["color.png", "manifest.json", "outline.png"]
        archive.extractall(tmp_path / "unzipped")
    packaged = json.loads((tmp_path / "unzipped" / "manifest.json").read_text(encoding="utf-8"))
    assert packaged["bots"][0]["botId"] == REAL_BOT_ID
    assert packaged["webApplicationInfo"] == {
        "id": REAL_BOT_ID,
        "resource": f"api://freelance.contoso.com/botid-{REAL_BOT_ID}",
    }
    assert packaged["validDomains"] == ["freelance.contoso.com"]
    assert packaged["id"] == REAL_ENV["TEAMS_APP_ID"]
    assert packaged["version"] == "1.4.2"
    assert packaged["developer"]["name"] == "Contoso IT"
    assert packaged["developer"]["privacyUrl"] == "https://freelance.contoso.com/privacy"
    rsc = packaged["authorization"]["permissions"]["resourceSpecific"]
    assert {p["name"] for p in rsc} == set(build.RSC_PERMISSIONS)
    assert {p["type"] for p in rsc} == {"Application"}
    for icon in ("color.png", "outline.png"):
        assert (tmp_path / "unzipped" / icon).read_bytes() == (
            build.MANIFEST_DIR / icon
        ).read_bytes()

    (report,) = validate(tmp_path / "unzipped" / "manifest.json")
    assert report["errors"] == [], "\n".join(report["errors"])


def test_same_input_makes_the_same_zip(tmp_path: Path) -> None:
    manifest, _menu = build_manifest(PackageConfig(), registry_commands())
    icons = [build.MANIFEST_DIR / "color.png", build.MANIFEST_DIR / "outline.png"]
    first = build.write_package(manifest, icons, tmp_path / "a").read_bytes()
    second = build.write_package(manifest, icons, tmp_path / "b").read_bytes()
    assert first == second


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MicrosoftAppId": "my-bot"}, "MicrosoftAppId must be a GUID"),
        ({"BOT_DOMAIN": "https://bot.contoso.com/api"}, "BOT_DOMAIN must be a host name"),
        ({"TEAMS_APP_ID": "x"}, "TEAMS_APP_ID must be a GUID"),
        ({"TEAMS_APP_VERSION": "1.0"}, "TEAMS_APP_VERSION must look like 1.2.3"),
        ({"TEAMS_APP_DEVELOPER_NAME": "x" * 33}, "TEAMS_APP_DEVELOPER_NAME"),
        ({"TEAMS_APP_PRIVACY_URL": "http://contoso.com"}, "TEAMS_APP_PRIVACY_URL must be"),
        ({"TEAMS_APP_RSC": "maybe"}, "TEAMS_APP_RSC must be true or false"),
    ],
)
def test_bad_settings_are_refused_by_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        build_manifest(PackageConfig.from_env(env), registry_commands())


# --- the command menu ---------------------------------------------------------------------------


def test_menu_offers_every_registered_command_in_its_scopes() -> None:
    commands = registry_commands()
    manifest, menu = build_manifest(PackageConfig(), commands)
    lists = manifest["bots"][0]["commandLists"]
    limits = COMMAND_LIMITS[SCHEMA_VERSION]
    assert len(lists) <= limits.lists
    scopes_seen = [scope for command_list in lists for scope in command_list["scopes"]]
    assert len(scopes_seen) == len(set(scopes_seen)), "a scope in two lists"
    for command in commands:
        for scope in ("personal", "team", "groupChat"):
            (titles,) = [
                [c["title"] for c in cl["commands"]] for cl in lists if scope in cl["scopes"]
            ] or [[]]
            offered = command.name.lstrip("/") in titles
            if scope not in command.scopes:
                assert not offered, (command.name, scope)
            elif not command.admin_only:
                assert offered, (command.name, scope)
            else:
                assert offered or any(command.name in note for note in menu.left_out)
    for command_list in lists:
        assert 0 < len(command_list["commands"]) <= limits.commands
        for entry in command_list["commands"]:
            assert not entry["title"].startswith("/")
            assert len(entry["title"]) <= limits.title
            assert 0 < len(entry["description"]) <= limits.description


def test_admin_commands_stay_in_the_scopes_they_declare() -> None:
    manifest, _menu = build_manifest(PackageConfig(), registry_commands())
    lists = manifest["bots"][0]["commandLists"]
    for command in registry_commands():
        if command.admin_only:
            for command_list in lists:
                titles = [c["title"] for c in command_list["commands"]]
                if command.name.lstrip("/") in titles:
                    assert set(command_list["scopes"]) <= set(command.scopes)


@dataclass(frozen=True)
class FakeCommand:
    name: str
    description: str = "Does a thing"
    usage: str = ""
    admin_only: bool = False
    scopes: tuple[str, ...] = ("personal", "team", "groupChat")


def test_menu_puts_everyones_commands_first_and_shows_usage() -> None:
    menu = command_menu(
        [
            FakeCommand("/audit", admin_only=True, scopes=("personal",)),
            FakeCommand("/retry", usage="/retry FC-n", admin_only=True, scopes=("personal",)),
            FakeCommand("/help"),
        ]
    )
    (personal, shared) = menu.command_lists
    assert personal["scopes"] == ["personal"]
    assert [c["title"] for c in personal["commands"]] == ["help", "audit", "retry"]
    assert personal["commands"][2]["description"] == "Does a thing. Usage: /retry FC-n"
    assert shared == {
        "scopes": ["team", "groupChat"],
        "commands": [{"title": "help", "description": "Does a thing"}],
    }
    assert menu.left_out == []


def test_admin_commands_that_do_not_fit_are_left_out_and_reported() -> None:
    limits = COMMAND_LIMITS[SCHEMA_VERSION]
    everyone = [FakeCommand(f"/user{n}") for n in range(limits.commands - 2)]
    admins = [FakeCommand(f"/admin{n}", admin_only=True) for n in range(4)]
    menu = command_menu([*admins, *everyone])
    (only,) = menu.command_lists
    titles = [c["title"] for c in only["commands"]]
    assert titles == [f"user{n}" for n in range(limits.commands - 2)] + ["admin0", "admin1"]
    assert len(menu.left_out) == 3  # one note per scope
    assert all("/admin2, /admin3" in note for note in menu.left_out)


def test_too_many_commands_for_everyone_fail_with_a_clear_error() -> None:
    limits = COMMAND_LIMITS[SCHEMA_VERSION]
    commands = [FakeCommand(f"/c{n}") for n in range(limits.commands + 1)]
    with pytest.raises(ManifestError, match=f"holds at most {limits.commands}"):
        command_menu(commands)


def test_bad_commands_fail_with_a_clear_error() -> None:
    with pytest.raises(ManifestError, match="unknown scopes"):
        command_menu([FakeCommand("/x", scopes=("meeting",))])
    with pytest.raises(ManifestError, match="longer than 128 characters"):
        command_menu([FakeCommand("/" + "x" * 129)])
    with pytest.raises(ManifestError, match="longer than 4000"):
        command_menu([FakeCommand("/x", description="d" * 4001)])


# --- icons ------------------------------------------------------------------------------------


def test_color_icon_is_192_square_rgba_and_is_the_generated_one() -> None:
    width, height, depth, color_type, rows = read_png(
        (build.MANIFEST_DIR / "color.png").read_bytes()
    )
    assert (width, height, depth, color_type) == (COLOR_SIZE, COLOR_SIZE, 8, 6)
    assert rows == color_pixels(), f"manifest/color.png is stale: run `{BUILD_COMMAND}`"
    center = rows[COLOR_SIZE // 2][4 * (COLOR_SIZE // 2) :][:4]
    assert center[3] == 255  # opaque in the middle


def test_outline_icon_is_32_square_white_on_transparent_and_is_the_generated_one() -> None:
    width, height, depth, color_type, rows = read_png(
        (build.MANIFEST_DIR / "outline.png").read_bytes()
    )
    assert (width, height, depth, color_type) == (OUTLINE_SIZE, OUTLINE_SIZE, 8, 6)
    assert rows == outline_pixels(), f"manifest/outline.png is stale: run `{BUILD_COMMAND}`"
    pixels = [row[i : i + 4] for row in rows for i in range(0, len(row), 4)]
    assert all(p[:3] == b"\xff\xff\xff" or p[3] == 0 for p in pixels), "only white is allowed"
    transparent = sum(1 for p in pixels if p[3] == 0)
    assert transparent > len(pixels) // 2, "the background must be transparent"
    assert rows[0][3] == 0  # corner
