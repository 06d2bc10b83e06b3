"""Engagements put straight into the state after approval, with their first provisioning job:
for load, fault and crash scenarios that are about provisioning, not about the cards before it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from core.engagements import provision_job
from core.model import Engagement, EngagementState
from core.ports import Storage


async def queue_approved_engagements(
    storage: Storage,
    *,
    count: int,
    teams: Sequence[tuple[str, str, str]],
    tenant_id: str,
    prefix: str,
    approver: tuple[str, str],
    now: datetime,
) -> list[int]:
    """`count` engagements spread round-robin over `teams` (team id, team name, requester id),
    approved by `approver` (id, name), each with a queued provision job. Returns their ids."""
    ids: list[int] = []
    async with storage.transaction() as tx:
        for i in range(count):
            team_id, team_name, requester_id = teams[i % len(teams)]
            engagement = await tx.engagements.add(
                Engagement(
                    requester_id=requester_id,
                    requester_name=f"Requester {i % len(teams)}",
                    tenant_id=tenant_id,
                    project_title=f"{prefix} project {i}",
                    description=f"{prefix} scenario",
                    freelancer_name=f"Freelancer {prefix}{i}",
                    freelancer_email=f"{prefix.lower()}{i}@fabrikam.example",
                    start_date=date(2030, 1, 1),
                    end_date=date(2030, 3, 1),
                    team_id=team_id,
                    team_name=team_name,
                    channel_name=f"{prefix} {i}",
                    created_at=now,
                    updated_at=now,
                    state=EngagementState.PROVISIONING,
                    approver_id=approver[0],
                    approver_name=approver[1],
                )
            )
            assert engagement.id is not None
            await tx.jobs.enqueue(provision_job(engagement))
            ids.append(engagement.id)
        await tx.commit()
    return ids
