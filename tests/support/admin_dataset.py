"""A known program history for the admin commands' tests and benchmark: engagements in every
state over three teams, with decision and provisioning times, and their audit records. The
expected answers (lists, KPIs) are computed here from the plain data, independently of
core/admin.py and of SQL."""

from __future__ import annotations

import random
import statistics
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from core.model import AuditOutcome, AuditRecord, Engagement, EngagementState
from storage.repositories import SqlStorage, engagement_columns
from storage.tables import audit_log, engagements

S = EngagementState
TEAMS = (
    ("team-marketing-0000", "Contoso Marketing"),
    ("team-research-00000", "Research"),
    ("team-sales-00000000", "Sales EMEA"),
)
# Roughly how a program's history is spread over the states.
STATE_WEIGHTS = {
    S.PENDING_APPROVAL: 6,
    S.REJECTED: 8,
    S.PROVISIONING: 2,
    S.ACTIVE: 30,
    S.PROVISIONING_FAILED: 2,
    S.OFFBOARDING: 1,
    S.OFFBOARDING_FAILED: 1,
    S.ENDED: 50,
}
DECIDED = frozenset(set(S) - {S.PENDING_APPROVAL})
PROVISIONED = frozenset({S.ACTIVE, S.OFFBOARDING, S.OFFBOARDING_FAILED, S.ENDED})
ADMIN_ID = "admin-0000"
ADMIN_NAME = "Dana Admin"


@dataclass(frozen=True)
class Dataset:
    now: datetime
    today: date
    tenant_id: str
    engagements: Sequence[Engagement]  # with ids 1..n, in id order


def make_dataset(
    count: int, *, now: datetime, tenant_id: str, seed: int = 7, history_days: int = 400
) -> Dataset:
    rng = random.Random(seed)
    states = list(STATE_WEIGHTS)
    weights = list(STATE_WEIGHTS.values())
    today = now.date()
    made: list[Engagement] = []
    for i in range(1, count + 1):
        state = rng.choices(states, weights)[0]
        team_id, team_name = TEAMS[rng.randrange(len(TEAMS))]
        created = now - timedelta(days=rng.uniform(0, history_days))
        if state is S.PENDING_APPROVAL and rng.random() < 0.5:
            created = now - timedelta(hours=rng.uniform(0, 96))
        decided = (
            created + timedelta(minutes=rng.uniform(5, 60 * 72)) if state in DECIDED else None
        )
        if decided is not None and decided > now:
            decided = now
        provisioned = None
        if state in PROVISIONED and decided is not None:
            provisioned = min(now, decided + timedelta(seconds=rng.uniform(20, 3_600)))
        start = created.date() + timedelta(days=3)
        if state is S.ACTIVE:
            end = today + timedelta(days=rng.randint(-1, 120))
        else:
            end = start + timedelta(days=rng.randint(14, 180))
        # Some freelancers work on several engagements; their e-mail's case varies.
        person = rng.randrange(max(1, count // 2))
        email = f"freelancer{person}@fabrikam.example"
        if rng.random() < 0.2:
            email = email.upper()
        made.append(
            Engagement(
                requester_id=f"requester-{i % 40}",
                requester_name=f"Requester {i % 40}",
                tenant_id=tenant_id,
                project_title=f"Project {i}",
                description="Known dataset",
                freelancer_name=f"Freelancer {person}",
                freelancer_email=email,
                start_date=start,
                end_date=end,
                team_id=team_id,
                team_name=team_name,
                channel_name=f"Project {i}",
                created_at=created,
                updated_at=provisioned or decided or created,
                id=i,
                version=1,
                state=state,
                approver_id=f"approver-{i % 7}",
                approver_name=f"Approver {i % 7}",
                decided_by_id=f"approver-{i % 7}" if decided else None,
                decided_by_name=f"Approver {i % 7}" if decided else None,
                decided_at=decided,
                decision_reason="Out of budget" if state is S.REJECTED else None,
                provisioned_at=provisioned,
            )
        )
    return Dataset(now, today, tenant_id, made)


def audit_records(dataset: Dataset, per_engagement: int) -> Iterator[AuditRecord]:
    """`per_engagement` records for each engagement, in time order per engagement; the ids
    are the database's (insertion order)."""
    actions = ("engagement.submitted", "approval.routed", "approval.card_sent")
    for engagement in dataset.engagements:
        for n in range(per_engagement):
            yield AuditRecord(
                at=engagement.created_at + timedelta(seconds=n),
                actor_id=engagement.requester_id,
                actor_name=engagement.requester_name,
                action=actions[n % len(actions)] if n < len(actions) else f"test.step_{n}",
                outcome=AuditOutcome.REFUSED if n == 4 else AuditOutcome.OK,
                engagement_id=engagement.id,
                detail=f"record {n} of {engagement.id}",
            )


async def store(
    storage: SqlStorage,
    dataset: Dataset,
    *,
    audit_per_engagement: int = 0,
    batch: int = 5_000,
) -> None:
    """Bulk-insert the dataset (ids as given) and its audit records."""
    async with storage.engine.begin() as connection:
        rows = []
        for engagement in dataset.engagements:
            values = engagement_columns(engagement)
            values.update(id=engagement.id, version=engagement.version)
            rows.append(values)
            if len(rows) >= batch:
                await connection.execute(sa.insert(engagements), rows)
                rows = []
        if rows:
            await connection.execute(sa.insert(engagements), rows)
        if connection.dialect.name == "postgresql":
            # Explicit ids leave the sequence behind; new engagements must not collide.
            await connection.execute(
                sa.text(
                    "SELECT setval(pg_get_serial_sequence('engagements', 'id'), "
                    "(SELECT max(id) FROM engagements))"
                )
            )
        records = []
        for record in audit_records(dataset, audit_per_engagement):
            records.append(
                {
                    "at": record.at,
                    "actor_id": record.actor_id,
                    "actor_name": record.actor_name,
                    "action": record.action,
                    "outcome": record.outcome.value,
                    "engagement_id": record.engagement_id,
                    "detail": record.detail,
                }
            )
            if len(records) >= batch:
                await connection.execute(sa.insert(audit_log), records)
                records = []
        if records:
            await connection.execute(sa.insert(audit_log), records)


# --- expected answers, from the plain data ----------------------------------------------------


def expected_by_state(dataset: Dataset) -> dict[EngagementState, int]:
    return dict(Counter(e.state for e in dataset.engagements))


def expected_kpis(dataset: Dataset, window_days: int) -> dict[str, object]:
    since = dataset.now - timedelta(days=window_days)
    decided = [
        e for e in dataset.engagements if e.decided_at is not None and e.decided_at >= since
    ]
    provisioned = [
        e
        for e in dataset.engagements
        if e.provisioned_at is not None and e.provisioned_at >= since and e.decided_at
    ]
    decision_seconds = [(e.decided_at - e.created_at).total_seconds() for e in decided]  # type: ignore[operator]
    provisioning_seconds = [
        (e.provisioned_at - e.decided_at).total_seconds()  # type: ignore[operator]
        for e in provisioned
    ]
    rejected = sum(1 for e in decided if e.state is S.REJECTED)
    teams: dict[str, set[str]] = {}
    for e in dataset.engagements:
        if e.state is S.ACTIVE:
            teams.setdefault(e.team_name, set()).add(e.freelancer_email.lower())
    ending = sum(
        1
        for e in dataset.engagements
        if e.state is S.ACTIVE
        and dataset.today <= e.end_date <= dataset.today + timedelta(days=30)
    )
    waiting = sum(
        1
        for e in dataset.engagements
        if e.state is S.PENDING_APPROVAL and e.created_at < dataset.now - timedelta(hours=48)
    )
    return {
        "decisions": len(decided),
        "median_decision_s": statistics.median(decision_seconds) if decision_seconds else None,
        "provisionings": len(provisioned),
        "median_provisioning_s": (
            statistics.median(provisioning_seconds) if provisioning_seconds else None
        ),
        "rejected": rejected,
        "active_by_team": {team: len(emails) for team, emails in teams.items()},
        "ending_30": ending,
        "waiting_48h": waiting,
    }


def expected_requests(dataset: Dataset, states: set[EngagementState] | None) -> list[int]:
    """Ids, newest first."""
    return [
        e.id or 0 for e in reversed(dataset.engagements) if states is None or e.state in states
    ]


def expected_expiring(dataset: Dataset, days: int) -> list[int]:
    chosen = [
        e
        for e in dataset.engagements
        if e.state is S.ACTIVE
        and dataset.today <= e.end_date <= dataset.today + timedelta(days=days)
    ]
    return [e.id or 0 for e in sorted(chosen, key=lambda e: (e.end_date, e.id or 0))]
