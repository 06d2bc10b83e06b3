"""The Storage port on SQLAlchemy Core: repositories bound to one connection per transaction,
and the worker's JobStore where every call is its own short transaction."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.clock import Clock, SystemClock
from core.errors import DuplicateSubmission, StaleVersion
from core.model import (
    AuditOutcome,
    AuditRecord,
    CardKind,
    DataClassification,
    Engagement,
    EngagementState,
    IntakeDraft,
    Job,
    JobKind,
    JobStatus,
    MessageRef,
    NewJob,
    OffboardingStep,
    PolicySetting,
    Revision,
    SentCard,
    TeamInstallation,
    UserConversation,
    engagement_ref,
)
from core.ports import (
    AuditLog,
    CardRepository,
    ConversationRepository,
    DraftRepository,
    DurationSummary,
    EngagementQuery,
    EngagementRepository,
    HandledActivities,
    JobQueue,
    JobStore,
    PolicyRepository,
    ProgramFigures,
    RevisionRepository,
    Storage,
    Transaction,
)
from storage.db import make_engine
from storage.migrate import upgrade_engine
from storage.tables import (
    QUEUED_JOB,
    audit_log,
    engagement_cards,
    engagement_revisions,
    engagements,
    handled_activities,
    intake_drafts,
    jobs,
    team_installations,
    tenant_policy_settings,
    user_conversations,
)


def _insert(connection: AsyncConnection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can take ON CONFLICT clauses, in the connection's dialect."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"INSERT ... ON CONFLICT on {dialect}")


async def _upsert(connection: AsyncConnection, table: sa.Table, values: Mapping[str, Any]) -> None:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE, in each backend's dialect: one statement,
    so two transactions writing the same key at once do not fail (the later one waits for the
    earlier one's commit on PostgreSQL, for the write lock on SQLite, then updates)."""
    key = list(table.primary_key.columns)
    insert = _insert(connection, table).values(**values)
    keys = {column.name for column in key}
    changes = {name: insert.excluded[name] for name in values if name not in keys}
    await connection.execute(insert.on_conflict_do_update(index_elements=key, set_=changes))


def _to_json(value: Any) -> str:
    """JSON text for a Text column, key order kept. ASCII only (json escapes the rest), so every
    Python string survives on both backends, even what PostgreSQL's text cannot hold (NUL, and
    lone surrogates, which have no UTF-8). NaN and infinities are refused: they are not JSON."""
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


# --- engagements ---------------------------------------------------------------------------------

# Fields that need a conversion (see below); the others are stored in a column of their name.
_CONVERTED_FIELDS = frozenset(
    {
        "id",
        "version",
        "state",
        "approval_message",
        "offboarding_done",
        "data_classification",
        "budget",
    }
)
_ENGAGEMENT_COLUMNS = tuple(
    f.name for f in dataclasses.fields(Engagement) if f.name not in _CONVERTED_FIELDS
)


def _budget_text(budget: Decimal | None) -> str | None:
    # Fixed-point ("1500.50", never "1.5E+3"), so the column reads as an amount; the Decimal
    # read back equals the one written (its exponent too, for amounts written fixed-point).
    if budget is None:
        return None
    if not budget.is_finite():
        raise ValueError(f"budget {budget!r} is not an amount")
    return format(budget, "f")


def engagement_columns(engagement: Engagement) -> dict[str, Any]:
    """The engagement as column values (without id and version): for bulk loads too."""
    values = {name: getattr(engagement, name) for name in _ENGAGEMENT_COLUMNS}
    values["state"] = engagement.state.value
    message = engagement.approval_message
    values["approval_conversation_id"] = message.conversation_id if message else None
    values["approval_activity_id"] = message.activity_id if message else None
    values["offboarding_done"] = sorted(step.value for step in engagement.offboarding_done)
    values["data_classification"] = DataClassification(engagement.data_classification).value
    values["budget"] = _budget_text(engagement.budget)
    return values


def _engagement(row: sa.Row[Any]) -> Engagement:
    data = row._mapping
    message = None
    if data["approval_activity_id"] is not None:
        message = MessageRef(data["approval_conversation_id"], data["approval_activity_id"])
    return Engagement(
        **{name: data[name] for name in _ENGAGEMENT_COLUMNS},
        id=data["id"],
        version=data["version"],
        state=EngagementState(data["state"]),
        approval_message=message,
        offboarding_done=frozenset(OffboardingStep(step) for step in data["offboarding_done"]),
        data_classification=DataClassification(data["data_classification"]),
        budget=Decimal(data["budget"]) if data["budget"] is not None else None,
    )


class SqlEngagementRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, engagement: Engagement) -> Engagement:
        """Insert. DuplicateSubmission when another engagement has the same submission_key.

        The duplicate is detected with INSERT ... ON CONFLICT (submission_key) DO NOTHING, so no
        statement fails: after DuplicateSubmission the transaction is still usable on both
        backends and holds whatever it did before (roll it back or go on; nothing was
        inserted). Any other constraint violation still raises IntegrityError. On PostgreSQL
        an insert that meets the same key in a transaction not yet committed waits for that one
        to end; the other engagement is visible to a transaction begun after that."""
        if engagement.id is not None:
            raise ValueError(f"{engagement.ref} is stored already; use update()")
        statement = (
            _insert(self._connection, engagements)
            .values(**engagement_columns(engagement), version=1)
            .on_conflict_do_nothing(index_elements=[engagements.c.submission_key])
            .returning(engagements.c.id)
        )
        new_id = (await self._connection.execute(statement)).scalar_one_or_none()
        if new_id is None:
            raise DuplicateSubmission("This request was submitted already.")
        return dataclasses.replace(engagement, id=new_id, version=1)

    async def get(self, engagement_id: int) -> Engagement | None:
        return await self._one(sa.select(engagements).where(engagements.c.id == engagement_id))

    async def get_by_submission_key(self, submission_key: str) -> Engagement | None:
        return await self._one(
            sa.select(engagements).where(engagements.c.submission_key == submission_key)
        )

    async def find_by_channel_name(
        self, team_id: str, channel_name: str, *, states: Sequence[EngagementState]
    ) -> Engagement | None:
        """Case-insensitive by SQL lower() on both sides: ASCII on SQLite, the database's
        collation on PostgreSQL (so non-ASCII letters may compare differently). The oldest
        match when there are several. Served by ix_engagements_team_id_lower_channel_name."""
        if not states:
            return None
        return await self._one(
            sa.select(engagements)
            .where(engagements.c.team_id == team_id)
            .where(sa.func.lower(engagements.c.channel_name) == sa.func.lower(channel_name))
            .where(engagements.c.state.in_([state.value for state in states]))
            .order_by(engagements.c.id)
            .limit(1)
        )

    async def _one(self, query: sa.Select[Any]) -> Engagement | None:
        row = (await self._connection.execute(query)).first()
        return _engagement(row) if row is not None else None

    async def update(self, engagement: Engagement) -> Engagement:
        """Compare-and-set on the version; also StaleVersion when the row does not exist.
        (Changing submission_key to one another engagement has raises IntegrityError.)"""
        if engagement.id is None:
            raise ValueError("engagement has no id; use add()")
        result = await self._connection.execute(
            sa.update(engagements)
            .where(engagements.c.id == engagement.id)
            .where(engagements.c.version == engagement.version)
            .values(**engagement_columns(engagement), version=engagements.c.version + 1)
        )
        if result.rowcount != 1:
            raise StaleVersion(f"{engagement_ref(engagement.id)} was changed by someone else.")
        return dataclasses.replace(engagement, version=engagement.version + 1)

    async def list_by_requester(
        self, requester_id: str, *, limit: int = 50
    ) -> Sequence[Engagement]:
        return await self._list(
            sa.select(engagements)
            .where(engagements.c.requester_id == requester_id)
            .order_by(engagements.c.created_at.desc(), engagements.c.id.desc())
            .limit(limit)
        )

    async def list_by_state(
        self, states: Sequence[EngagementState], *, limit: int = 50
    ) -> Sequence[Engagement]:
        if not states:
            return []
        return await self._list(
            sa.select(engagements)
            .where(engagements.c.state.in_([state.value for state in states]))
            .order_by(engagements.c.created_at, engagements.c.id)
            .limit(limit)
        )

    async def list_awaiting_approval_card(self, approver_id: str) -> Sequence[Engagement]:
        return await self._list(
            sa.select(engagements)
            .where(engagements.c.state == EngagementState.PENDING_APPROVAL.value)
            .where(engagements.c.approver_id == approver_id)
            .where(engagements.c.approval_activity_id.is_(None))
            .order_by(engagements.c.created_at, engagements.c.id)
        )

    async def list_for_guest(self, guest_user_id: str | None, email: str) -> Sequence[Engagement]:
        c = engagements.c
        match = c.freelancer_email == email.lower()
        if guest_user_id is not None:
            match = sa.or_(match, c.guest_user_id == guest_user_id)
        return await self._list(sa.select(engagements).where(match).order_by(c.id))

    async def search(
        self, query: EngagementQuery, *, offset: int, limit: int
    ) -> Sequence[Engagement]:
        """Served by the (state, team_id, id) and (state, end_date, id) indexes: the page is
        read in index order, so its cost grows with the offset, not with the table."""
        c = engagements.c
        select = sa.select(engagements)
        if query.states is not None:
            select = select.where(c.state.in_(sorted(state.value for state in query.states)))
        if query.team_ids is not None:
            select = select.where(c.team_id.in_(sorted(query.team_ids)))
        if query.ends_on_or_after is not None:
            select = select.where(c.end_date >= query.ends_on_or_after)
        if query.ends_on_or_before is not None:
            select = select.where(c.end_date <= query.ends_on_or_before)
        if query.order == "ending":
            select = select.order_by(c.end_date, c.id)
        else:
            select = select.order_by(c.id.desc())
        return await self._list(select.offset(offset).limit(limit))

    async def after(self, after_id: int, *, limit: int) -> Sequence[Engagement]:
        return await self._list(
            sa.select(engagements)
            .where(engagements.c.id > after_id)
            .order_by(engagements.c.id)
            .limit(limit)
        )

    async def _list(self, query: sa.Select[Any]) -> list[Engagement]:
        return [_engagement(row) for row in await self._connection.execute(query)]


def _seconds_between(
    later: sa.ColumnElement[Any], earlier: sa.ColumnElement[Any], connection: AsyncConnection
) -> sa.ColumnElement[Any]:
    """`later - earlier` in seconds, computed by the database. SQLite stores UTC datetimes as
    text, which julianday() reads (to about 50 microseconds)."""
    if connection.dialect.name == "postgresql":
        return sa.extract("epoch", later - earlier)
    return (sa.func.julianday(later) - sa.func.julianday(earlier)) * 86_400.0


class SqlProgramFigures:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def count_by_state(self) -> dict[EngagementState, int]:
        # An index-only scan of (state, created_at).
        rows = await self._connection.execute(
            sa.select(engagements.c.state, sa.func.count()).group_by(engagements.c.state)
        )
        return {EngagementState(state): count for state, count in rows}

    async def count_jobs(self) -> dict[tuple[str, str], int]:
        # A scan of the job table (finished jobs stay in it); read once per metrics scrape.
        rows = await self._connection.execute(
            sa.select(jobs.c.kind, jobs.c.status, sa.func.count()).group_by(
                jobs.c.kind, jobs.c.status
            )
        )
        return {(kind, status): count for kind, status, count in rows}

    async def decision_times(self, since: datetime) -> DurationSummary:
        c = engagements.c
        window = c.decided_at >= since
        count, rejected = (
            await self._connection.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.count().filter(c.state == EngagementState.REJECTED.value),
                ).where(window)
            )
        ).one()
        median = await self._median(
            _seconds_between(c.decided_at, c.created_at, self._connection), window, count
        )
        return DurationSummary(count, median, rejected)

    async def provisioning_times(self, since: datetime) -> DurationSummary:
        c = engagements.c
        window = sa.and_(c.provisioned_at >= since, c.decided_at.is_not(None))
        count = (
            await self._connection.execute(sa.select(sa.func.count()).where(window))
        ).scalar_one()
        median = await self._median(
            _seconds_between(c.provisioned_at, c.decided_at, self._connection), window, count
        )
        return DurationSummary(count, median)

    async def _median(
        self, seconds: sa.ColumnElement[Any], window: sa.ColumnElement[bool], count: int
    ) -> timedelta | None:
        """The median of `seconds` over the window's `count` rows, sorted in the database:
        the middle value, or the mean of the two middle ones."""
        if count == 0:
            return None
        query = (
            sa.select(seconds)
            .where(window)
            .order_by(seconds)
            .offset((count - 1) // 2)
            .limit(2 - count % 2)
        )
        middle = [float(value) for value in (await self._connection.execute(query)).scalars()]
        return timedelta(seconds=sum(middle) / len(middle))

    async def active_freelancers_by_team(self) -> Sequence[tuple[str, int]]:
        # Counted from the (state, team_id, freelancer_email) index alone; each team's name is
        # one lookup of its newest active engagement.
        c = engagements.c
        active = c.state == EngagementState.ACTIVE.value
        newest = engagements.alias("newest")
        counts = (
            sa.select(
                c.team_id.label("team_id"),
                sa.func.count(sa.distinct(sa.func.lower(c.freelancer_email))).label("freelancers"),
            )
            .where(active)
            .group_by(c.team_id)
            .subquery()
        )
        team_name = (
            sa.select(newest.c.team_name)
            .where(newest.c.state == EngagementState.ACTIVE.value)
            .where(newest.c.team_id == counts.c.team_id)
            .order_by(newest.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        rows = await self._connection.execute(
            sa.select(team_name, counts.c.freelancers).order_by(
                counts.c.freelancers.desc(), team_name
            )
        )
        return [(name, count) for name, count in rows]

    async def count_active_ending(self, first: date, last: date) -> int:
        c = engagements.c
        query = (
            sa.select(sa.func.count())
            .where(c.state == EngagementState.ACTIVE.value)
            .where(c.end_date >= first)
            .where(c.end_date <= last)
        )
        return int((await self._connection.execute(query)).scalar_one())

    async def count_pending_created_before(self, before: datetime) -> int:
        c = engagements.c
        query = (
            sa.select(sa.func.count())
            .where(c.state == EngagementState.PENDING_APPROVAL.value)
            .where(c.created_at < before)
        )
        return int((await self._connection.execute(query)).scalar_one())


class SqlHandledActivities:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def claim(self, key: str, now: datetime) -> bool:
        # ON CONFLICT DO NOTHING: of two replicas claiming at once, exactly one inserts; the
        # other waits for its commit (PostgreSQL) or the write lock (SQLite), then sees it.
        statement = (
            _insert(self._connection, handled_activities)
            .values(activity_key=key, handled_at=now)
            .on_conflict_do_nothing(index_elements=[handled_activities.c.activity_key])
            .returning(handled_activities.c.activity_key)
        )
        return (await self._connection.execute(statement)).scalar_one_or_none() is not None

    async def release(self, key: str) -> None:
        await self._connection.execute(
            sa.delete(handled_activities).where(handled_activities.c.activity_key == key)
        )

    async def prune(self, before: datetime) -> int:
        result = await self._connection.execute(
            sa.delete(handled_activities).where(handled_activities.c.handled_at < before)
        )
        return int(result.rowcount or 0)


# --- conversations -------------------------------------------------------------------------------


class SqlConversationRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def save_user(self, conversation: UserConversation) -> None:
        await _upsert(self._connection, user_conversations, dataclasses.asdict(conversation))

    async def get_user(self, aad_id: str) -> UserConversation | None:
        query = sa.select(user_conversations).where(user_conversations.c.aad_id == aad_id)
        row = (await self._connection.execute(query)).first()
        return UserConversation(**row._mapping) if row is not None else None

    async def save_team(self, team: TeamInstallation) -> None:
        await _upsert(self._connection, team_installations, dataclasses.asdict(team))

    async def get_team(self, aad_group_id: str) -> TeamInstallation | None:
        return await self._one_team(team_installations.c.aad_group_id == aad_group_id)

    async def get_team_by_thread(self, team_id: str) -> TeamInstallation | None:
        return await self._one_team(team_installations.c.team_id == team_id)

    async def list_teams(self, tenant_id: str) -> Sequence[TeamInstallation]:
        query = (
            sa.select(team_installations)
            .where(team_installations.c.tenant_id == tenant_id)
            .order_by(team_installations.c.name, team_installations.c.aad_group_id)
        )
        return [TeamInstallation(**row._mapping) for row in await self._connection.execute(query)]

    async def _one_team(self, condition: sa.ColumnElement[bool]) -> TeamInstallation | None:
        query = sa.select(team_installations).where(condition)
        row = (await self._connection.execute(query)).first()
        return TeamInstallation(**row._mapping) if row is not None else None


# --- tenant policy settings ----------------------------------------------------------------------


class SqlPolicyRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def get_all(self, tenant_id: str) -> Sequence[PolicySetting]:
        # The primary key (tenant_id, key) serves the lookup and the order.
        c = tenant_policy_settings.c
        query = sa.select(tenant_policy_settings).where(c.tenant_id == tenant_id).order_by(c.key)
        return [
            PolicySetting(
                key=row.key,
                value=json.loads(row.value),
                updated_by_id=row.updated_by_id,
                updated_by_name=row.updated_by_name,
                updated_at=row.updated_at,
            )
            for row in await self._connection.execute(query)
        ]

    async def put(self, tenant_id: str, setting: PolicySetting) -> None:
        """Insert or replace. A value that is not JSON data raises TypeError or ValueError."""
        await _upsert(
            self._connection,
            tenant_policy_settings,
            {
                "tenant_id": tenant_id,
                "key": setting.key,
                "value": _to_json(setting.value),
                "updated_by_id": setting.updated_by_id,
                "updated_by_name": setting.updated_by_name,
                "updated_at": setting.updated_at,
            },
        )

    async def remove(self, tenant_id: str, key: str) -> bool:
        c = tenant_policy_settings.c
        result = await self._connection.execute(
            sa.delete(tenant_policy_settings).where(c.tenant_id == tenant_id, c.key == key)
        )
        return result.rowcount == 1


# --- intake drafts -------------------------------------------------------------------------------


class SqlDraftRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def get(self, tenant_id: str, user_id: str) -> IntakeDraft | None:
        c = intake_drafts.c
        query = sa.select(intake_drafts).where(c.tenant_id == tenant_id, c.user_id == user_id)
        row = (await self._connection.execute(query)).first()
        if row is None:
            return None
        return IntakeDraft(
            tenant_id=row.tenant_id,
            user_id=row.user_id,
            values=json.loads(row.form_values),
            time_zone=row.time_zone,
            created_at=row.created_at,
            updated_at=row.updated_at,
            previewed=row.previewed,
            version=row.version,
        )

    async def save(self, draft: IntakeDraft) -> IntakeDraft:
        """Insert or replace; `draft.version` is not compared (the last save wins).

        One INSERT ... ON CONFLICT DO UPDATE that bumps the stored version and keeps the stored
        created_at, so concurrent saves of one draft all succeed and each gets its own version:
        on PostgreSQL a save meeting one not yet committed waits for it, then updates the row it
        committed; on SQLite saves queue for the write lock."""
        c = intake_drafts.c
        insert = _insert(self._connection, intake_drafts).values(
            tenant_id=draft.tenant_id,
            user_id=draft.user_id,
            form_values=_to_json(dict(draft.values)),
            time_zone=draft.time_zone,
            previewed=draft.previewed,
            version=1,
            created_at=draft.created_at,
            updated_at=draft.updated_at,
        )
        upsert = insert.on_conflict_do_update(
            index_elements=[c.tenant_id, c.user_id],
            set_={
                "form_values": insert.excluded.form_values,
                "time_zone": insert.excluded.time_zone,
                "previewed": insert.excluded.previewed,
                "updated_at": insert.excluded.updated_at,
                "version": c.version + 1,
            },
        ).returning(c.version, c.created_at)
        version, created_at = (await self._connection.execute(upsert)).one()
        return dataclasses.replace(draft, version=version, created_at=created_at)

    async def delete(self, tenant_id: str, user_id: str) -> bool:
        c = intake_drafts.c
        result = await self._connection.execute(
            sa.delete(intake_drafts).where(c.tenant_id == tenant_id, c.user_id == user_id)
        )
        return result.rowcount == 1

    async def prune(self, before: datetime) -> int:
        # Served by ix_intake_drafts_updated_at.
        result = await self._connection.execute(
            sa.delete(intake_drafts).where(intake_drafts.c.updated_at < before)
        )
        return int(result.rowcount or 0)


# --- cards sent about engagements ---------------------------------------------------------------


class SqlCardRepository:
    def __init__(self, connection: AsyncConnection, clock: Clock) -> None:
        self._connection = connection
        self._clock = clock

    async def add(self, card: SentCard) -> None:
        """Insert, stamped with the clock's now; a message recorded already (the same
        conversation and activity id, for whichever engagement) is left as it is.

        INSERT ... ON CONFLICT DO NOTHING on ux_engagement_cards_conversation_id_activity_id, so
        no statement fails and the transaction stays usable: on PostgreSQL an insert that meets
        the message in a transaction not yet committed waits for it, then inserts nothing if
        that one commits; on SQLite inserts queue for the write lock. An engagement that does
        not exist raises IntegrityError (a foreign key)."""
        c = engagement_cards.c
        await self._connection.execute(
            _insert(self._connection, engagement_cards)
            .values(
                engagement_id=card.engagement_id,
                kind=CardKind(card.kind).value,
                user_id=card.user_id,
                conversation_id=card.ref.conversation_id,
                activity_id=card.ref.activity_id,
                created_at=self._clock.now(),
            )
            .on_conflict_do_nothing(index_elements=[c.conversation_id, c.activity_id])
        )

    async def list_for_engagement(self, engagement_id: int) -> Sequence[SentCard]:
        # Oldest first: in the order they were recorded (the id). Served by
        # ix_engagement_cards_engagement_id.
        c = engagement_cards.c
        query = sa.select(engagement_cards).where(c.engagement_id == engagement_id).order_by(c.id)
        return [
            SentCard(
                engagement_id=row.engagement_id,
                kind=CardKind(row.kind),
                user_id=row.user_id,
                ref=MessageRef(row.conversation_id, row.activity_id),
            )
            for row in await self._connection.execute(query)
        ]


# --- revisions of a request ----------------------------------------------------------------------


class SqlRevisionRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, revision: Revision) -> None:
        """Insert. StaleVersion when the engagement has a revision of that number already (a
        concurrent resubmission stored it first).

        The duplicate is detected with INSERT ... ON CONFLICT (engagement_id, number) DO NOTHING,
        as in SqlEngagementRepository.add, so the transaction stays usable on both backends (roll
        it back: the engagement's compare-and-set lost too). On PostgreSQL an insert that meets
        the same number in a transaction not yet committed waits for that one to end. Values
        that are not JSON text raise TypeError or ValueError; an engagement that does not exist
        raises IntegrityError (a foreign key)."""
        c = engagement_revisions.c
        statement = (
            _insert(self._connection, engagement_revisions)
            .values(
                engagement_id=revision.engagement_id,
                number=revision.number,
                form_values=_to_json(dict(revision.values)),
                comment=revision.comment,
                comment_by_id=revision.comment_by_id,
                comment_by_name=revision.comment_by_name,
                created_at=revision.created_at,
            )
            .on_conflict_do_nothing(index_elements=[c.engagement_id, c.number])
            .returning(c.number)
        )
        if (await self._connection.execute(statement)).scalar_one_or_none() is None:
            raise StaleVersion(
                f"{engagement_ref(revision.engagement_id)} has a revision {revision.number}"
                " already: someone resubmitted it first."
            )

    async def list_for_engagement(self, engagement_id: int) -> Sequence[Revision]:
        # The primary key (engagement_id, number) serves the lookup and the order.
        c = engagement_revisions.c
        query = (
            sa.select(engagement_revisions)
            .where(c.engagement_id == engagement_id)
            .order_by(c.number)
        )
        return [
            Revision(
                engagement_id=row.engagement_id,
                number=row.number,
                values=json.loads(row.form_values),
                created_at=row.created_at,
                comment=row.comment,
                comment_by_id=row.comment_by_id,
                comment_by_name=row.comment_by_name,
            )
            for row in await self._connection.execute(query)
        ]


# --- audit ---------------------------------------------------------------------------------------


class SqlAuditLog:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def append(self, record: AuditRecord) -> None:
        values = dataclasses.asdict(record)
        del values["id"]
        values["outcome"] = record.outcome.value
        await self._connection.execute(sa.insert(audit_log).values(**values))

    async def list_for_engagement(self, engagement_id: int) -> Sequence[AuditRecord]:
        return await self._records(
            sa.select(audit_log)
            .where(audit_log.c.engagement_id == engagement_id)
            .order_by(audit_log.c.at, audit_log.c.id)
        )

    async def newest(
        self, *, engagement_id: int | None, offset: int, limit: int
    ) -> Sequence[AuditRecord]:
        # Newest by id (the order records were written in): the primary key, or
        # (engagement_id, id), read backwards.
        query = sa.select(audit_log)
        if engagement_id is not None:
            query = query.where(audit_log.c.engagement_id == engagement_id)
        return await self._records(
            query.order_by(audit_log.c.id.desc()).offset(offset).limit(limit)
        )

    async def count_for_engagement(self, engagement_id: int) -> int:
        query = sa.select(sa.func.count()).where(audit_log.c.engagement_id == engagement_id)
        return int((await self._connection.execute(query)).scalar_one())

    async def after(self, after_id: int, *, limit: int) -> Sequence[AuditRecord]:
        return await self._records(
            sa.select(audit_log)
            .where(audit_log.c.id > after_id)
            .order_by(audit_log.c.id)
            .limit(limit)
        )

    async def _records(self, query: sa.Select[Any]) -> list[AuditRecord]:
        return [
            AuditRecord(**{**row._mapping, "outcome": AuditOutcome(row.outcome)})
            for row in await self._connection.execute(query)
        ]


# --- jobs ----------------------------------------------------------------------------------------


def _job(row: sa.Row[Any]) -> Job:
    return Job(
        id=row.id,
        kind=JobKind(row.kind),
        engagement_id=row.engagement_id,
        payload=row.payload,
        status=JobStatus(row.status),
        attempts=row.attempts,
        run_at=row.run_at,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        last_error=row.last_error,
        created_at=row.created_at,
    )


# Another row of the job table, for "is a job with the same key running?".
_other_job = jobs.alias("other_job")


def _due(now: datetime) -> sa.ColumnElement[bool]:
    """Queued jobs whose time has come, and running jobs whose worker stopped renewing.

    A queued job whose dedupe_key another job holds while running is not due: jobs with one key
    never run side by side. That holds while the other job's lease is live and also once it
    expired: the expired job is due itself and is taken over first (letting both go would run
    them side by side); the queued one follows when it ends."""
    key_busy = (
        sa.exists()
        .where(_other_job.c.dedupe_key == jobs.c.dedupe_key)
        .where(_other_job.c.status == JobStatus.RUNNING.value)
        .where(_other_job.c.id != jobs.c.id)
    )
    return sa.or_(
        sa.and_(
            jobs.c.status == JobStatus.QUEUED.value,
            jobs.c.run_at <= now,
            sa.or_(jobs.c.dedupe_key.is_(None), ~key_busy),
        ),
        sa.and_(jobs.c.status == JobStatus.RUNNING.value, jobs.c.lease_expires_at < now),
    )


def _is_violation_of(error: sa.exc.IntegrityError, index: str, columns: str) -> bool:
    """Whether `error` is a uniqueness violation of `index` (PostgreSQL names the index;
    SQLite names the columns, as "table.column")."""
    cause = error.orig.__cause__ if error.orig is not None else None
    name = getattr(cause, "constraint_name", None)  # asyncpg's UniqueViolationError
    if name is not None:
        return bool(name == index)
    return f"UNIQUE constraint failed: {columns}" in str(error.orig)


# Each further attempt needs another transaction to change the job holding the key in the
# instant between two of our statements.
_KEY_RACE_ATTEMPTS = 10


class SqlJobQueue:
    def __init__(self, connection: AsyncConnection, clock: Clock) -> None:
        self._connection = connection
        self._clock = clock

    async def enqueue(self, job: NewJob) -> int:
        """Insert; with a dedupe_key that a queued job has, insert nothing and return that
        job's id (the key may belong to a job enqueued earlier in this transaction). A key
        whose job is running does not count: the new job waits until that one ends (_due).

        INSERT ... ON CONFLICT DO NOTHING on the partial unique index ux_jobs_dedupe_key_queued,
        then read the job that holds the key, so no statement fails and the transaction stays
        usable. On PostgreSQL an insert that meets the key in a transaction not yet committed
        waits for it: if that one commits, its job is the answer (READ COMMITTED: the read
        sees it); if it rolls back, the insert goes ahead. If the job holding the key was
        claimed between the insert and the read, the insert is tried again (and succeeds)."""
        now = self._clock.now()
        values = {
            "kind": job.kind.value,
            "engagement_id": job.engagement_id,
            "payload": dict(job.payload),
            "status": JobStatus.QUEUED.value,
            "attempts": 0,
            "run_at": job.run_at or now,
            "created_at": now,
            "updated_at": now,
            "dedupe_key": job.dedupe_key,
        }
        if job.dedupe_key is None:
            statement = sa.insert(jobs).values(**values).returning(jobs.c.id)
            job_id: int = (await self._connection.execute(statement)).scalar_one()
            return job_id
        insert = (
            _insert(self._connection, jobs)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[jobs.c.dedupe_key], index_where=QUEUED_JOB)
            .returning(jobs.c.id)
        )
        holder = (
            sa.select(jobs.c.id)
            .where(jobs.c.dedupe_key == job.dedupe_key)
            .where(jobs.c.status == JobStatus.QUEUED.value)
        )
        for _ in range(_KEY_RACE_ATTEMPTS):
            inserted = (await self._connection.execute(insert)).scalar_one_or_none()
            if inserted is not None:
                return int(inserted)
            existing = (await self._connection.execute(holder)).scalar_one_or_none()
            if existing is not None:
                return int(existing)
        raise RuntimeError(f"enqueue of dedupe_key {job.dedupe_key!r} kept losing races")


class SqlJobStore:
    """The worker's side of the job table. A job is owned by the worker named in lease_owner
    while its status is running; every change after claim() checks that ownership."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def claim(
        self, *, worker_id: str, now: datetime, lease_seconds: float, limit: int
    ) -> Sequence[Job]:
        if limit <= 0:
            return []
        lease = {
            "status": JobStatus.RUNNING.value,
            "lease_owner": worker_id,
            "lease_expires_at": now + timedelta(seconds=lease_seconds),
            "attempts": jobs.c.attempts + 1,
            "updated_at": now,
        }
        async with self._engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                claimed = await self._claim_skip_locked(connection, now, limit, lease)
            else:
                claimed = await self._claim_compare_and_set(connection, now, limit, lease)
            if not claimed:
                return []
            query = (
                sa.select(jobs).where(jobs.c.id.in_(claimed)).order_by(jobs.c.run_at, jobs.c.id)
            )
            return [_job(row) for row in await connection.execute(query)]

    @staticmethod
    async def _claim_skip_locked(
        connection: AsyncConnection, now: datetime, limit: int, lease: Mapping[str, Any]
    ) -> list[int]:
        # Rows another claimer has locked are skipped rather than waited for, and a row that
        # was claimed meanwhile is re-checked against _due() by FOR UPDATE, so no job is
        # handed out twice and claimers do not queue behind each other.
        query = (
            sa.select(jobs.c.id)
            .where(_due(now))
            .order_by(jobs.c.run_at, jobs.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = list((await connection.execute(query)).scalars())
        if ids:
            await connection.execute(sa.update(jobs).where(jobs.c.id.in_(ids)).values(**lease))
        return ids

    @staticmethod
    async def _claim_compare_and_set(
        connection: AsyncConnection, now: datetime, limit: int, lease: Mapping[str, Any]
    ) -> list[int]:
        # SQLite has no row locks. Each candidate is taken with an UPDATE that repeats the due
        # condition, so a job another claimer got first matches no row and is skipped. The
        # first UPDATE takes SQLite's single write lock until commit, so when candidates were
        # lost, the next pass reads under that lock and cannot lose again.
        claimed: list[int] = []
        tried: set[int] = set()
        while len(claimed) < limit:
            query = (
                sa.select(jobs.c.id)
                .where(_due(now), jobs.c.id.not_in(tried))
                .order_by(jobs.c.run_at, jobs.c.id)
                .limit(limit - len(claimed))
            )
            candidates = list((await connection.execute(query)).scalars())
            lost = False
            for job_id in candidates:
                tried.add(job_id)
                result = await connection.execute(
                    sa.update(jobs).where(jobs.c.id == job_id, _due(now)).values(**lease)
                )
                if result.rowcount == 1:
                    claimed.append(job_id)
                else:
                    lost = True
            if not lost:
                break
        return claimed

    async def renew_lease(
        self, job_id: int, *, worker_id: str, now: datetime, lease_seconds: float
    ) -> bool:
        return await self._update_owned(
            job_id,
            worker_id,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            updated_at=now,
        )

    async def complete(self, job_id: int, *, worker_id: str, now: datetime) -> bool:
        return await self._update_owned(
            job_id,
            worker_id,
            status=JobStatus.SUCCEEDED.value,
            lease_expires_at=None,
            updated_at=now,
        )

    async def retry(
        self, job_id: int, *, worker_id: str, run_at: datetime, error: str, now: datetime
    ) -> bool:
        """Back to queued, due at `run_at`, with `error` as last_error.

        If another job with the same dedupe_key is queued already (enqueued while this one
        ran), this one is not queued again, as at most one job per key waits: that job does
        the same work, and it is put back to `run_at` if it was due earlier (the backoff the
        retry asked for holds). This job then ends as failed, its last_error naming the job
        that took over. Still True: the retry was recorded."""
        async with self._engine.begin() as connection:
            for _ in range(_KEY_RACE_ATTEMPTS):
                owned = await connection.execute(
                    sa.select(jobs.c.dedupe_key)
                    .where(jobs.c.id == job_id)
                    .where(jobs.c.status == JobStatus.RUNNING.value)
                    .where(jobs.c.lease_owner == worker_id)
                    # PostgreSQL: nobody takes the job over until this retry is recorded.
                    .with_for_update()
                )
                row = owned.first()
                if row is None:
                    return False
                if row.dedupe_key is not None:
                    waiting = (
                        await connection.execute(
                            sa.select(jobs.c.id)
                            .where(jobs.c.dedupe_key == row.dedupe_key)
                            .where(jobs.c.status == JobStatus.QUEUED.value)
                        )
                    ).first()
                    if waiting is not None:
                        return await self._hand_over(
                            connection, job_id, worker_id, waiting.id, run_at, error, now
                        )
                try:
                    return await self._requeue(connection, job_id, worker_id, run_at, error, now)
                except sa.exc.IntegrityError as exc:
                    # A job with the key was enqueued after our look: hand over to it.
                    if not _is_violation_of(exc, "ux_jobs_dedupe_key_queued", "jobs.dedupe_key"):
                        raise
        raise RuntimeError(f"retry of job {job_id} kept losing races for its dedupe_key")

    @staticmethod
    async def _requeue(
        connection: AsyncConnection,
        job_id: int,
        worker_id: str,
        run_at: datetime,
        error: str,
        now: datetime,
    ) -> bool:
        statement = (
            sa.update(jobs)
            .where(jobs.c.id == job_id)
            .where(jobs.c.status == JobStatus.RUNNING.value)
            .where(jobs.c.lease_owner == worker_id)
            .values(
                status=JobStatus.QUEUED.value,
                run_at=run_at,
                last_error=error,
                # A queued job belongs to nobody.
                lease_owner=None,
                lease_expires_at=None,
                updated_at=now,
            )
        )
        if connection.dialect.name == "postgresql":
            # A failed statement aborts the whole transaction on PostgreSQL; the savepoint
            # keeps it usable. (SQLite undoes just the failed statement; and savepoints do not
            # mix with its driver's implicit transactions.)
            async with connection.begin_nested():
                result = await connection.execute(statement)
        else:
            result = await connection.execute(statement)
        return result.rowcount == 1

    @staticmethod
    async def _hand_over(
        connection: AsyncConnection,
        job_id: int,
        worker_id: str,
        waiting_id: int,
        run_at: datetime,
        error: str,
        now: datetime,
    ) -> bool:
        ended = await connection.execute(
            sa.update(jobs)
            .where(jobs.c.id == job_id)
            .where(jobs.c.status == JobStatus.RUNNING.value)
            .where(jobs.c.lease_owner == worker_id)
            .values(
                status=JobStatus.FAILED.value,
                last_error=f"{error} (job {waiting_id}, queued with the same key, takes over)",
                lease_expires_at=None,
                updated_at=now,
            )
        )
        if ended.rowcount != 1:
            return False
        await connection.execute(
            sa.update(jobs)
            .where(jobs.c.id == waiting_id)
            .where(jobs.c.run_at < run_at)
            .values(run_at=run_at, updated_at=now)
        )
        return True

    async def fail(self, job_id: int, *, worker_id: str, error: str, now: datetime) -> bool:
        return await self._update_owned(
            job_id,
            worker_id,
            status=JobStatus.FAILED.value,
            last_error=error,
            lease_expires_at=None,
            updated_at=now,
        )

    async def get(self, job_id: int) -> Job | None:
        async with self._engine.connect() as connection:
            row = (await connection.execute(sa.select(jobs).where(jobs.c.id == job_id))).first()
        return _job(row) if row is not None else None

    async def list_for_engagement(self, engagement_id: int) -> Sequence[Job]:
        query = sa.select(jobs).where(jobs.c.engagement_id == engagement_id).order_by(jobs.c.id)
        async with self._engine.connect() as connection:
            return [_job(row) for row in await connection.execute(query)]

    async def _update_owned(self, job_id: int, worker_id: str, **values: Any) -> bool:
        """Apply `values` if `worker_id` still holds the job; False when the lease was lost."""
        async with self._engine.begin() as connection:
            result = await connection.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id)
                .where(jobs.c.status == JobStatus.RUNNING.value)
                .where(jobs.c.lease_owner == worker_id)
                .values(**values)
            )
        return result.rowcount == 1


# --- storage and transactions --------------------------------------------------------------------


class SqlTransaction:
    # Typed as the ports so SqlTransaction satisfies the Transaction protocol (its attributes
    # are invariant).
    engagements: EngagementRepository
    conversations: ConversationRepository
    audit: AuditLog
    jobs: JobQueue
    figures: ProgramFigures
    activities: HandledActivities
    policies: PolicyRepository
    drafts: DraftRepository
    cards: CardRepository
    revisions: RevisionRepository

    def __init__(self, connection: AsyncConnection, clock: Clock) -> None:
        self._connection = connection
        self.engagements = SqlEngagementRepository(connection)
        self.conversations = SqlConversationRepository(connection)
        self.audit = SqlAuditLog(connection)
        self.jobs = SqlJobQueue(connection, clock)
        self.figures = SqlProgramFigures(connection)
        self.activities = SqlHandledActivities(connection)
        self.policies = SqlPolicyRepository(connection)
        self.drafts = SqlDraftRepository(connection)
        self.cards = SqlCardRepository(connection, clock)
        self.revisions = SqlRevisionRepository(connection)

    async def commit(self) -> None:
        await self._connection.commit()


class SqlStorage:
    """Storage on one async engine. `clock` dates what enqueue() stamps (created_at and the
    default run_at), so tests that drive time drive the queue too.

    On SQLite a transaction takes the database's single write lock at its first write and
    keeps it until it ends (reads before that see the latest commits, not a snapshot; the
    version compare-and-set is what keeps decisions safe). So do not wait, inside a
    transaction that has written, for another transaction that writes: it would wait for
    the busy timeout and then fail with "database is locked".
    """

    jobs: JobStore

    def __init__(self, engine: AsyncEngine, *, clock: Clock | None = None) -> None:
        self.engine = engine
        self._clock: Clock = clock or SystemClock()
        self.jobs = SqlJobStore(engine)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self.engine.connect() as connection:
            try:
                yield SqlTransaction(connection, self._clock)
            finally:
                # Not committed (or an error): nothing of it may become visible.
                if connection.in_transaction():
                    await connection.rollback()

    async def close(self) -> None:
        await self.engine.dispose()

    dispose = close

    async def __aenter__(self) -> SqlStorage:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


async def open_storage(
    url: str, *, migrate: bool = True, clock: Clock | None = None, **engine_options: Any
) -> SqlStorage:
    """Storage for `url` (any form normalize_database_url accepts), migrated to the latest
    schema unless `migrate` is False. Close it with `await storage.close()`."""
    engine = make_engine(url, **engine_options)
    try:
        if migrate:
            await upgrade_engine(engine)
    except BaseException:
        await engine.dispose()
        raise
    return SqlStorage(engine, clock=clock)


if TYPE_CHECKING:

    def _implements_ports(
        storage: SqlStorage, transaction: SqlTransaction, job_store: SqlJobStore
    ) -> tuple[Storage, Transaction, JobStore]:
        """Makes mypy check the classes against the ports they implement."""
        return storage, transaction, job_store
