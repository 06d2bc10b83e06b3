"""The lifecycle rig: the real job handlers and lifecycle use cases on SQLite, the real
GraphDirectory (msgraph-sdk over HTTP) against the Graph simulator, a clock the test moves,
and a notifier that records what the Bot Connector would have been asked to send.

`run_due_jobs()` plays the worker deterministically: claim what is due at the clock's time,
run it, record the outcome, until nothing is due."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from core.config import ProgramConfig
from core.engagements import provision_job
from core.lifecycle import LifecycleService
from core.model import (
    ACCESS_NEEDING_STATES,
    Actor,
    Engagement,
    EngagementState,
    MessageRef,
    Notice,
)
from core.provisioning import JobHandlers
from graph.client import GraphSettings, build_graph_client, close_graph_client
from graph.dev_seed import ALEX_ID, DEV_TENANT_ID, MEGAN_ID
from graph.directory import GraphDirectory
from graph.simulator import GraphSimulator
from storage.repositories import SqlStorage, open_storage
from tests.support.clock import FakeClock, ManualClock
from tests.support.simulator import running_simulator

ALEX = Actor(ALEX_ID, "Alex Wilber")
MEGAN = Actor(MEGAN_ID, "Megan Bowen")
GRAPH_TOKEN = "lifecycle-token"
GRACE_DAYS = 30


@dataclass
class RecordingNotifier:
    """The Notifier port, recording instead of calling the Bot Connector."""

    clock: FakeClock
    config: ProgramConfig
    reminders: dict[int, list[date]] = field(default_factory=lambda: defaultdict(list))
    nudges: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    extension_requests: list[int] = field(default_factory=list)
    closing_notes: list[int] = field(default_factory=list)
    notices: list[tuple[int, str, Notice, str | None]] = field(default_factory=list)

    @property
    def ended_notices(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = defaultdict(list)
        for engagement_id, user_id, notice, _ in self.notices:
            if notice is Notice.ENDED:
                out[engagement_id].append(user_id)
        return dict(out)

    def _id(self, engagement: Engagement) -> int:
        assert engagement.id is not None
        return engagement.id

    async def send_approval_request(self, engagement: Engagement) -> MessageRef:
        return MessageRef("a:approver", f"approval-{engagement.id}")

    async def send_notice(
        self, user_id: str, engagement: Engagement, notice: Notice, detail: str | None = None
    ) -> None:
        self.notices.append((self._id(engagement), user_id, notice, detail))

    async def post_welcome(self, engagement: Engagement) -> MessageRef:
        return MessageRef(f"{engagement.channel_id}", f"welcome-{engagement.id}")

    async def send_end_reminder(self, engagement: Engagement) -> MessageRef:
        self.reminders[self._id(engagement)].append(self.config.today(self.clock.now()))
        return MessageRef("a:requester", f"reminder-{engagement.id}")

    async def send_extension_request(self, engagement: Engagement) -> MessageRef:
        self.extension_requests.append(self._id(engagement))
        return MessageRef("a:approver", f"extension-{engagement.id}")

    async def send_invitation_nudge(self, engagement: Engagement, days_pending: int) -> None:
        self.nudges[self._id(engagement)].append(days_pending)

    async def post_closing_note(self, engagement: Engagement) -> MessageRef:
        self.closing_notes.append(self._id(engagement))
        return MessageRef(f"{engagement.channel_id}", f"closing-{engagement.id}")


@dataclass
class LifecycleRig:
    storage: SqlStorage
    sim: GraphSimulator
    clock: FakeClock
    config: ProgramConfig
    notifier: RecordingNotifier
    handlers: JobHandlers
    lifecycle: LifecycleService
    jobs_run: int = 0

    async def approve_engagement(
        self, *, guest_email: str, team: tuple[str, str], start: date, end: date, title: str
    ) -> int:
        """An engagement of Alex's, approved by Megan now, with its first provisioning job."""
        now = self.clock.now()
        async with self.storage.transaction() as tx:
            engagement = await tx.engagements.add(
                Engagement(
                    requester_id=ALEX_ID,
                    requester_name=ALEX.name,
                    tenant_id=DEV_TENANT_ID,
                    project_title=title,
                    description=f"{title} work",
                    freelancer_name=guest_email.split("@")[0].title(),
                    freelancer_email=guest_email,
                    start_date=start,
                    end_date=end,
                    team_id=team[0],
                    team_name=team[1],
                    channel_name=title,
                    created_at=now,
                    updated_at=now,
                    state=EngagementState.PROVISIONING,
                    approver_id=MEGAN_ID,
                    approver_name=MEGAN.name,
                    decided_by_id=MEGAN_ID,
                    decided_by_name=MEGAN.name,
                    decided_at=now,
                )
            )
            await tx.jobs.enqueue(provision_job(engagement))
            await tx.commit()
        assert engagement.id is not None
        return engagement.id

    async def run_due_jobs(self, *, limit: int = 10_000) -> None:
        for _ in range(limit):
            now = self.clock.now()
            claimed = await self.storage.jobs.claim(
                worker_id="rig", now=now, lease_seconds=600, limit=50
            )
            if not claimed:
                return
            for job in claimed:
                await self.handlers.run(job)
                assert await self.storage.jobs.complete(job.id, worker_id="rig", now=now)
                self.jobs_run += 1
        raise AssertionError("jobs kept coming: a job re-queues itself without end")

    async def engagement(self, engagement_id: int) -> Engagement:
        async with self.storage.transaction() as tx:
            found = await tx.engagements.get(engagement_id)
        assert found is not None
        return found

    async def all_engagements(self) -> list[Engagement]:
        out = []
        for engagement_id in range(1, 10_000):
            async with self.storage.transaction() as tx:
                found = await tx.engagements.get(engagement_id)
            if found is None:
                return out
            out.append(found)
        return out

    async def audited(self, engagement_id: int, action: str) -> bool:
        async with self.storage.transaction() as tx:
            records = await tx.audit.list_for_engagement(engagement_id)
        return any(r.action == action for r in records)

    async def redeem(self, engagement_id: int) -> None:
        guest = (await self.engagement(engagement_id)).guest_user_id
        assert guest is not None
        self.sim.redeem_invitation(guest)

    def invitations_to(self, email: str) -> int:
        return sum(
            1
            for i in self.sim.invitations
            if i.invited_user_email_address.lower() == email.lower()
        )

    def in_team(self, team_id: str, user_id: str) -> bool:
        return any(m.user_id == user_id for m in self.sim.team_members(team_id))

    def in_channel(self, team_id: str, channel_id: str | None, user_id: str) -> bool:
        assert channel_id is not None
        return any(m.user_id == user_id for m in self.sim.channel_members(team_id, channel_id))

    async def assert_access_matches_engagements(self, *, on: date) -> None:
        """Every guest holds exactly what its engagements in the database need."""
        engagements = await self.all_engagements()
        now = self.clock.now()
        by_guest: dict[str, list[Engagement]] = defaultdict(list)
        for e in engagements:
            assert e.state not in (
                EngagementState.PROVISIONING,
                EngagementState.OFFBOARDING,
                EngagementState.PROVISIONING_FAILED,
                EngagementState.OFFBOARDING_FAILED,
            ), f"{e.ref} is stuck at {e.state} on {on}"
            if e.guest_user_id is not None:
                by_guest[e.guest_user_id].append(e)
        for guest, theirs in by_guest.items():
            needing = [e for e in theirs if e.state in ACCESS_NEEDING_STATES]
            user = self.sim.user(guest)
            where = f"on {on}, guest of {[e.ref for e in theirs]}"
            if needing:
                assert user is not None and user.account_enabled, f"disabled {where}"
            else:
                last_end = max(e.ended_at for e in theirs if e.ended_at is not None)
                days = (now - last_end).days
                if days < GRACE_DAYS:
                    assert user is not None and not user.account_enabled, f"enabled {where}"
                elif days > GRACE_DAYS:
                    assert user is None, f"not deleted {days} days after the end, {where}"
            if user is None:
                continue
            for e in theirs:
                assert e.channel_id is not None
                wanted = e.state is EngagementState.ACTIVE
                assert self.in_channel(e.team_id, e.channel_id, guest) == wanted, (
                    f"channel of {e.ref} ({e.state}) {where}"
                )
            for team_id in {e.team_id for e in theirs}:
                wanted = any(e.team_id == team_id for e in needing)
                assert self.in_team(team_id, guest) == wanted, f"team {team_id} {where}"


@contextlib.asynccontextmanager
async def lifecycle_rig(
    tmp_path: Path, *, start: datetime, **config: Any
) -> AsyncIterator[LifecycleRig]:
    clock = FakeClock(start)
    program = ProgramConfig(
        admin_ids=frozenset(),
        guest_delete_after_days=GRACE_DAYS,
        **config,
    )
    storage = await open_storage(f"sqlite+aiosqlite:///{tmp_path / 'lifecycle.db'}", clock=clock)
    async with running_simulator(clock=ManualClock(), accepted_token=GRAPH_TOKEN) as sim:
        assert sim.base_url is not None
        client = build_graph_client(GraphSettings(base_url=sim.base_url, static_token=GRAPH_TOKEN))
        notifier = RecordingNotifier(clock, program)
        handlers = JobHandlers(storage, GraphDirectory(client), notifier, clock, program)
        try:
            yield LifecycleRig(
                storage=storage,
                sim=sim,
                clock=clock,
                config=program,
                notifier=notifier,
                handlers=handlers,
                lifecycle=LifecycleService(storage, clock, program),
            )
        finally:
            await close_graph_client(client)
            await storage.close()
