"""The freelancer loop clicked through the Microsoft 365 Agents Playground's web UI.

The bot runs in dev mode (auth off, SQLite, the Graph simulator with the seeded directory) in
this process on a real port. Two Playgrounds from node_modules talk to it, one signed in as
Alex (the requester) and one as Megan (his manager, the approver): a Playground is one person.
`tools/playground_e2e.mjs` drives both web UIs in headless Chromium: /request, filling and
submitting the intake card, Megan's Approve, Alex's "is ready" notice and the welcome card in
the new private channel. Its screenshots go to test-artifacts/playground/ (or
PLAYGROUND_E2E_ARTIFACTS).

The Playground only knows the channels in its config; a welcome posted into any other channel
is answered 500 ConversationNotFound. So the rig lists the private channel in the Playground
configs (the team's one extra channel) and makes the in-process simulator create the channel
under that id. Everything else is the committed `.m365agentsplayground.yml`.

Without node, Chromium or node_modules the test is skipped; under CI=true it fails instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from core import audit_actions as A
from core.model import AuditOutcome, EngagementState
from graph.dev_seed import ALEX_ID, MARKETING_TEAM_ID, MEGAN_ID
from graph.simulator import GraphSimulator
from settings import Settings
from tests.playground.config import committed_config, config_for, write_config
from tests.playground.rig import (
    DRIVER,
    ROOT,
    Playground,
    RunningBot,
    find_tools,
    free_port,
    running_bot,
    start_playground,
    stop_process,
    wait_until_listening,
)

# The private channel the request asks for, and the id both the simulator (which creates it)
# and the Playgrounds (which show it) give it.
CHANNEL_NAME = "Spring campaign"
CHANNEL_ID = "19:fc-playground-e2e-channel@thread.tacv2"
FREELANCER = "Jordan Rivers"
FREELANCER_EMAIL = "jordan.rivers@fabrikam.example"

STEPS = [
    "megan-opens-personal-chat",
    "alex-adds-bot-to-team",
    "alex-types-request",
    "alex-fills-intake-card",
    "alex-submits-request",
    "alex-confirms-preview",
    "megan-sees-approval-card",
    "megan-approves",
    "alex-notified-ready",
    "channel-welcome",
]

PLAYGROUND_START_S = 30.0
DRIVER_TIMEOUT_S = 60.0
UI_WAIT_MS = 15000


def start_date() -> date:
    # The bot's clock is UTC; a week ahead keeps "not in the past" true across midnight.
    return datetime.now(UTC).date() + timedelta(days=7)


def artifacts_dir() -> Path:
    configured = os.environ.get("PLAYGROUND_E2E_ARTIFACTS")
    folder = Path(configured) if configured else ROOT / "test-artifacts" / "playground"
    folder.mkdir(parents=True, exist_ok=True)
    # Only what this test writes, so a stale screenshot never passes for a new one.
    for old in [*folder.glob("[0-9][0-9]-*.png"), *folder.glob("failure-*.png")]:
        old.unlink()
    return folder


def assign_channel_id(simulator: GraphSimulator, channel_id: str) -> None:
    """The next channel the simulator creates gets `channel_id`; later ones a random id.

    Test rig only: the simulator has no public knob for the id of a channel made through its
    Graph API, so its id generator is wrapped on this one instance."""
    original: Callable[[], str] | None = getattr(simulator, "_new_channel_id", None)
    assert original is not None, "GraphSimulator._new_channel_id is gone: update this rig"
    pending = [channel_id]

    def next_id() -> str:
        return pending.pop() if pending else original()

    simulator._new_channel_id = next_id  # type: ignore[method-assign]


def dev_settings(tmp_path: Path) -> Settings:
    # As `python app.py` reads them, from environment variables only: no credentials, so dev
    # mode. A quick worker poll keeps the loop within the test's time budget.
    return Settings.from_env(
        {
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'fc.db'}",
            "PORT": "0",
            "WORKER_POLL_INTERVAL_S": "0.1",
            "JOB_RETRY_BASE_S": "0.2",
            "JOB_REPLICATION_RETRY_BASE_S": "0.2",
        }
    )


async def run_driver(
    node: str, chromium: str, alex: Playground, megan: Playground, out: Path
) -> tuple[dict[str, Any] | None, str]:
    start = start_date()
    process = await asyncio.create_subprocess_exec(
        node,
        str(DRIVER),
        f"--alex={alex.url}",
        f"--megan={megan.url}",
        f"--out={out}",
        f"--chromium={chromium}",
        f"--timeout-ms={UI_WAIT_MS}",
        f"--title={CHANNEL_NAME}",
        f"--channel={CHANNEL_NAME}",
        f"--freelancer={FREELANCER}",
        f"--email={FREELANCER_EMAIL}",
        f"--start={start.isoformat()}",
        f"--end={(start + timedelta(days=60)).isoformat()}",
        "--team=Contoso Marketing",
        cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), DRIVER_TIMEOUT_S)
    except TimeoutError:
        return None, f"the driver did not finish within {DRIVER_TIMEOUT_S} s"
    finally:
        await stop_driver(process)
    lines = stdout.decode(errors="replace").strip().splitlines()
    log = stderr.decode(errors="replace")
    try:
        return json.loads(lines[-1]), log
    except (IndexError, json.JSONDecodeError):
        return None, f"exit {process.returncode}, no JSON result:\n{stdout!r}\n{log}"


async def stop_driver(process: asyncio.subprocess.Process) -> None:
    """On a timeout or a cancelled test: SIGTERM first, so Playwright closes its Chromium
    before node exits; SIGKILL if it does not go."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), 5)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        await process.wait()


async def test_freelancer_loop_in_the_agents_playground_web_ui(tmp_path: Path) -> None:
    tools = find_tools()
    out = artifacts_dir()

    base = committed_config()
    channel = (CHANNEL_ID, CHANNEL_NAME)
    alex_config = write_config(
        config_for(base, given_name="Alex", extra_channel=channel), tmp_path / "alex.yml"
    )
    megan_config = write_config(
        config_for(
            base,
            given_name="Megan",
            personal_chat_id="a:dev-personal-megan",
            extra_channel=channel,
        ),
        tmp_path / "megan.yml",
    )
    assert base["currentUser"]["aadObjectId"] == ALEX_ID
    assert base["team"]["aadGroupId"] == MARKETING_TEAM_ID

    playgrounds: list[Playground] = []
    result: dict[str, Any] | None = None
    log = ""
    try:
        async with running_bot(dev_settings(tmp_path)) as bot:
            assert bot.components.simulator is not None, "not in dev mode"
            assign_channel_id(bot.components.simulator, CHANNEL_ID)
            for who, config in (("alex", alex_config), ("megan", megan_config)):
                playgrounds.append(
                    start_playground(
                        tools,
                        who=who,
                        port=free_port(),
                        config=config,
                        bot_endpoint=bot.endpoint,
                        workdir=tmp_path,
                    )
                )
            alex, megan = playgrounds
            async with aiohttp.ClientSession() as http:
                await asyncio.gather(
                    wait_until_listening(http, alex, PLAYGROUND_START_S),
                    wait_until_listening(http, megan, PLAYGROUND_START_S),
                )
            result, log = await run_driver(tools.node, tools.chromium, alex, megan, out)
            assert result is not None and result.get("ok"), failure_report(
                result, log, playgrounds
            )
            await check_bot_state(bot, result)
    finally:
        for playground in playgrounds:
            stop_process(playground.process)
            if playground.log_path.is_file():
                shutil.copy(playground.log_path, out / playground.log_path.name)

    assert result is not None
    assert [s["name"] for s in result["steps"]] == STEPS
    shots = [Path(step["screenshot"]) for step in result["steps"]]
    assert all(shot.parent == out.resolve() for shot in shots), shots
    assert all(is_png(shot) for shot in shots), shots


def is_png(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(8) == b"\x89PNG\r\n\x1a\n"


def failure_report(result: dict[str, Any] | None, log: str, playgrounds: list[Playground]) -> str:
    lines = [f"driver result: {json.dumps(result)}", f"driver log:\n{log[-3000:]}"]
    for playground in playgrounds:
        lines.append(f"{playground.who} Playground log (tail):\n{playground.log()[-2000:]}")
    return "\n".join(lines)


async def check_bot_state(bot: RunningBot, result: dict[str, Any]) -> None:
    """What the screenshots show is also what the bot and the simulator recorded."""
    assert result["ref"] == "FC-1"
    engagement = await bot.components.service.get(1)
    assert engagement.state is EngagementState.ACTIVE, engagement.failure_reason
    assert engagement.requester_id == ALEX_ID
    assert engagement.approver_id == MEGAN_ID
    assert engagement.decided_by_id == MEGAN_ID
    assert engagement.team_id == MARKETING_TEAM_ID
    assert engagement.freelancer_email == FREELANCER_EMAIL
    assert engagement.channel_name == CHANNEL_NAME
    assert engagement.start_date == start_date()
    assert engagement.end_date == engagement.start_date + timedelta(days=60)
    assert engagement.channel_id == CHANNEL_ID
    # The welcome was accepted by the Playground's connector (it returned an activity id).
    assert engagement.welcome_message_id

    simulator = bot.components.simulator
    assert simulator is not None
    channels = {c.id: c for c in simulator.channels(MARKETING_TEAM_ID)}
    created = channels[CHANNEL_ID]
    assert (created.display_name, created.membership_type) == (CHANNEL_NAME, "private")
    guest = simulator.user(str(engagement.guest_user_id))
    assert guest is not None and guest.user_type == "Guest"
    assert guest.mail == FREELANCER_EMAIL
    channel_members = {m.user_id for m in simulator.channel_members(MARKETING_TEAM_ID, CHANNEL_ID)}
    assert {ALEX_ID, guest.id} <= channel_members
    assert guest.id in {m.user_id for m in simulator.team_members(MARKETING_TEAM_ID)}

    async with bot.components.storage.transaction() as tx:
        records = await tx.audit.list_for_engagement(1)
    outcomes = {(r.action, r.outcome) for r in records}
    for action in (
        A.ENGAGEMENT_SUBMITTED,
        A.ENGAGEMENT_APPROVED,
        A.GRAPH_CHANNEL_CREATED,
        A.GRAPH_GUEST_INVITED,
        A.GRAPH_CHANNEL_MEMBER_ADDED,
        A.WELCOME_POSTED,
    ):
        assert (action, AuditOutcome.OK) in outcomes, (action, sorted(outcomes))
    assert (A.WELCOME_POSTED, AuditOutcome.FAILED) not in outcomes
