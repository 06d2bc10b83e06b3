"""Approval storage (issue 4), on SQLite and PostgreSQL: the engagement's approval fields and new
states, the cards sent about an engagement, the revisions of a request, and migration 0006 over
engagements stored before it."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from core.errors import StaleVersion
from core.model import CardKind, EngagementState, MessageRef, Revision, SentCard
from core.ports import EngagementQuery
from storage.db import make_engine
from storage.migrate import upgrade_engine
from storage.repositories import SqlStorage, open_storage
from storage.tables import engagement_cards, engagements
from tests.contract.conftest import FakeClock
from tests.contract.test_intake_storage import (
    assert_ids_never_repeat,
    downgrade_engine,
    insert_with_columns_of_the_time,
    schema,
)
from tests.contract.test_storage_contract import add, get, make_engagement, save

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CEST = timezone(timedelta(hours=2))
NEW_STATES = (
    EngagementState.CHANGES_REQUESTED,
    EngagementState.CANCELLED,
    EngagementState.EXPIRED,
)


def is_utc(value: datetime | None) -> bool:
    return value is not None and value.utcoffset() == timedelta(0)


async def engagement_id(storage: SqlStorage, **changes: Any) -> int:
    added = await add(storage, **changes)
    assert added.id is not None
    return added.id


# --- engagements: the approval fields ------------------------------------------------------------


async def test_minimal_engagement_gets_the_approval_defaults(storage: SqlStorage) -> None:
    stored = await get(storage, await engagement_id(storage))
    assert stored is not None
    assert (stored.approval_stage, stored.stages) == (1, 1)
    assert (stored.second_stage_group_id, stored.stage_started_at) == (None, None)
    assert (stored.approval_reminders, stored.escalated, stored.revision) == (0, False, 1)


async def test_approval_fields_round_trip_and_update(storage: SqlStorage) -> None:
    started = datetime(2026, 11, 21, 0, 30, 5, 123456, tzinfo=CEST)
    added = await add(
        storage,
        approval_stage=2,
        stages=2,
        second_stage_group_id="1f2e3d4c-5b6a-4789-8abc-def012345678",
        stage_started_at=started,
        approval_reminders=2,
        escalated=True,
        revision=3,
    )
    stored = await get(storage, added.id)
    assert stored == added
    assert stored.stage_started_at == started and is_utc(stored.stage_started_at)
    assert stored.stage_started_at.hour == 22 and stored.stage_started_at.microsecond == 123456

    changed = dataclasses.replace(
        added,
        approval_stage=1,
        stages=1,
        second_stage_group_id=None,
        stage_started_at=None,
        approval_reminders=0,
        escalated=False,
        revision=4,
    )
    saved = await save(storage, changed)
    assert await get(storage, added.id) == saved == dataclasses.replace(changed, version=2)


@pytest.mark.parametrize("state", NEW_STATES)
async def test_each_new_state_is_stored_and_read_back(
    storage: SqlStorage, state: EngagementState
) -> None:
    added = await add(storage, state=state)
    await add(storage)  # pending_approval

    stored = await get(storage, added.id)
    assert stored is not None and stored.state is state
    async with storage.transaction() as tx:
        by_state = await tx.engagements.list_by_state([state])
        found = await tx.engagements.search(
            EngagementQuery(states=frozenset({state})), offset=0, limit=10
        )
        counts = await tx.figures.count_by_state()
    assert [e.id for e in by_state] == [e.id for e in found] == [added.id]
    assert counts == {state: 1, EngagementState.PENDING_APPROVAL: 1}


async def test_changes_requested_and_resubmitted_through_update(storage: SqlStorage) -> None:
    added = await add(storage)
    sent_back = dataclasses.replace(added)
    sent_back.transition(EngagementState.CHANGES_REQUESTED, T0)
    sent_back = await save(storage, sent_back)

    resubmitted = dataclasses.replace(sent_back, revision=2, approval_reminders=0)
    resubmitted.transition(EngagementState.PENDING_APPROVAL, T0 + timedelta(hours=1))
    resubmitted = await save(storage, resubmitted)

    stored = await get(storage, added.id)
    assert stored == resubmitted
    assert stored.state is EngagementState.PENDING_APPROVAL and stored.revision == 2
    assert stored.version == 3


# --- migration 0006 ------------------------------------------------------------------------------

APPROVAL_COLUMNS = {
    "approval_stage",
    "stages",
    "second_stage_group_id",
    "stage_started_at",
    "approval_reminders",
    "escalated",
    "revision",
}
APPROVAL_TABLES = {"engagement_cards", "engagement_revisions"}


async def test_engagements_stored_before_0006_get_the_defaults(database_url: str) -> None:
    engine = make_engine(database_url, poolclass=NullPool)
    try:
        await upgrade_engine(engine, "0005")
        tables, columns = await schema(engine)
        assert not APPROVAL_TABLES & tables and not APPROVAL_COLUMNS & columns
        old = make_engagement(state=EngagementState.ACTIVE, hours=10)
        old_id = await insert_with_columns_of_the_time(engine, old)
        await upgrade_engine(engine)
    finally:
        await engine.dispose()

    storage = await open_storage(database_url, migrate=False)
    try:
        stored = await get(storage, old_id)
        async with storage.transaction() as tx:
            cards = await tx.cards.list_for_engagement(old_id)
            revisions = await tx.revisions.list_for_engagement(old_id)
    finally:
        await storage.close()
    assert stored == dataclasses.replace(old, id=old_id, version=1)
    assert (stored.approval_stage, stored.stages, stored.revision) == (1, 1, 1)
    assert (stored.approval_reminders, stored.escalated) == (0, False)
    assert (stored.second_stage_group_id, stored.stage_started_at) == (None, None)
    assert cards == [] and revisions == []


async def test_0006_downgrades_and_upgrades_again_keeping_engagements(database_url: str) -> None:
    engine = make_engine(database_url, poolclass=NullPool)
    try:
        await upgrade_engine(engine)
        storage = await open_storage(database_url, migrate=False)
        try:
            first = await add(storage, approval_stage=2, stages=2, escalated=True, revision=2)
            assert first.id is not None
            async with storage.transaction() as tx:
                await tx.cards.add(card(first.id))
                await tx.revisions.add(revision(first.id, 1))
                await tx.commit()
        finally:
            await storage.close()

        await downgrade_engine(engine, "0005")
        tables, columns = await schema(engine)
        assert not APPROVAL_TABLES & tables and not APPROVAL_COLUMNS & columns
        assert {"tenant_policy_settings", "intake_drafts"} <= tables  # 0005's stay
        await assert_ids_never_repeat(engine)

        await upgrade_engine(engine)
        tables, columns = await schema(engine)
        assert APPROVAL_TABLES <= tables and APPROVAL_COLUMNS <= columns
    finally:
        await engine.dispose()

    storage = await open_storage(database_url, migrate=False)
    try:
        stored = await get(storage, first.id)
        later = await add(storage)
        async with storage.transaction() as tx:
            cards = await tx.cards.list_for_engagement(first.id)
            revisions = await tx.revisions.list_for_engagement(first.id)
    finally:
        await storage.close()
    # The approval values, cards and revisions went with the downgrade; the engagement stayed.
    assert stored == dataclasses.replace(
        first, approval_stage=1, stages=1, escalated=False, revision=1
    )
    assert cards == [] and revisions == []
    assert later.id is not None and later.id > first.id


# --- cards sent about engagements ----------------------------------------------------------------


def card(
    engagement: int,
    activity_id: str = "1700000000001",
    *,
    kind: CardKind = CardKind.APPROVAL,
    user_id: str = "manager-1",
    conversation_id: str = "a:1personal-chat-manager",
) -> SentCard:
    return SentCard(engagement, kind, user_id, MessageRef(conversation_id, activity_id))


async def add_cards(storage: SqlStorage, *cards: SentCard) -> None:
    async with storage.transaction() as tx:
        for item in cards:
            await tx.cards.add(item)
        await tx.commit()


async def list_cards(storage: SqlStorage, engagement: int) -> list[SentCard]:
    async with storage.transaction() as tx:
        return list(await tx.cards.list_for_engagement(engagement))


async def test_cards_are_listed_oldest_first(storage: SqlStorage, clock: FakeClock) -> None:
    engagement = await engagement_id(storage)
    approval = card(engagement, "1700000000003")
    status = card(
        engagement,
        "1700000000001",  # an earlier-looking activity id: the order is the recording's
        kind=CardKind.STATUS,
        user_id="requester-1",
        conversation_id="a:1personal-chat-requester",
    )
    second_stage = card(engagement, "1700000000002", user_id="approver-2", conversation_id="a:2")
    await add_cards(storage, approval)
    clock.current += timedelta(seconds=1)
    await add_cards(storage, status, second_stage)

    stored = await list_cards(storage, engagement)

    assert stored == [approval, status, second_stage]
    assert [type(item.kind) for item in stored] == [CardKind] * 3
    assert all(isinstance(item.ref, MessageRef) for item in stored)


async def test_a_card_is_stamped_with_the_clock_in_utc(
    storage: SqlStorage, clock: FakeClock
) -> None:
    engagement = await engagement_id(storage)
    clock.current = datetime(2026, 11, 21, 1, 2, 3, 456789, tzinfo=CEST)
    await add_cards(storage, card(engagement))
    async with storage.engine.connect() as connection:
        created_at = (await connection.execute(sa.select(engagement_cards.c.created_at))).scalar()
    assert created_at == clock.current and is_utc(created_at)


async def test_the_same_message_recorded_again_is_not_a_second_card(storage: SqlStorage) -> None:
    engagement = await engagement_id(storage)
    other = await engagement_id(storage)
    first = card(engagement)
    await add_cards(storage, first)

    async with storage.transaction() as tx:
        await tx.cards.add(first)  # a retried job records it again
        # Still the same message: it stays the card it was recorded as.
        await tx.cards.add(dataclasses.replace(first, kind=CardKind.STATUS, user_id="x"))
        await tx.cards.add(dataclasses.replace(first, engagement_id=other))
        # The transaction is still usable after the no-ops.
        await tx.cards.add(card(engagement, "1700000000009"))
        await tx.commit()

    assert await list_cards(storage, engagement) == [first, card(engagement, "1700000000009")]
    assert await list_cards(storage, other) == []


async def test_one_activity_id_in_another_conversation_is_another_card(
    storage: SqlStorage,
) -> None:
    engagement = await engagement_id(storage)
    mine = card(engagement, "1700000000001", conversation_id="a:1")
    theirs = card(engagement, "1700000000001", conversation_id="a:2", user_id="manager-2")
    await add_cards(storage, mine, theirs)

    assert await list_cards(storage, engagement) == [mine, theirs]


async def test_cards_belong_to_their_engagement(storage: SqlStorage) -> None:
    first = await engagement_id(storage)
    second = await engagement_id(storage)
    first_card = card(first, "1")
    second_cards = [card(second, "2"), card(second, "3", kind=CardKind.STATUS)]
    await add_cards(storage, first_card, *second_cards)

    assert await list_cards(storage, first) == [first_card]
    assert await list_cards(storage, second) == second_cards
    assert await list_cards(storage, second + 1000) == []


async def test_a_card_added_without_commit_leaves_nothing(storage: SqlStorage) -> None:
    engagement = await engagement_id(storage)
    async with storage.transaction() as tx:
        await tx.cards.add(card(engagement))
        assert await tx.cards.list_for_engagement(engagement) == [card(engagement)]
    assert await list_cards(storage, engagement) == []


async def test_a_card_of_an_engagement_that_does_not_exist_is_refused(
    storage: SqlStorage,
) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        await add_cards(storage, card(4242))


async def test_card_values_keep_any_text(storage: SqlStorage) -> None:
    engagement = await engagement_id(storage)
    long_id = "19:" + "ü😀" * 300 + "@thread.v2;messageid=1700000000001"
    odd = card(engagement, "1700000000001'; --", user_id="👩‍💻 «user»", conversation_id=long_id)
    await add_cards(storage, odd)
    assert await list_cards(storage, engagement) == [odd]


async def test_concurrent_adds_of_one_card_all_succeed_and_store_it_once(
    storage: SqlStorage,
) -> None:
    engagement = await engagement_id(storage)
    adders = 10
    started = asyncio.Barrier(adders)

    async def add_after_barrier(n: int) -> None:
        async with storage.transaction() as tx:
            await started.wait()
            await tx.cards.add(card(engagement, user_id=f"manager-{n}"))
            await asyncio.sleep(0.05)  # others meet the message while this is not committed
            await tx.commit()

    await asyncio.wait_for(
        asyncio.gather(*(add_after_barrier(n) for n in range(adders))), timeout=60
    )

    (stored,) = await list_cards(storage, engagement)
    assert stored.ref == card(engagement).ref


# --- revisions of a request ----------------------------------------------------------------------


def revision(engagement: int, number: int, **changes: Any) -> Revision:
    made = Revision(
        engagement_id=engagement,
        number=number,
        values={"project_title": f"Website relaunch v{number}", "hours": "120"},
        created_at=T0 + timedelta(hours=number),
    )
    return dataclasses.replace(made, **changes)


async def add_revisions(storage: SqlStorage, *revisions: Revision) -> None:
    async with storage.transaction() as tx:
        for item in revisions:
            await tx.revisions.add(item)
        await tx.commit()


async def list_revisions(storage: SqlStorage, engagement: int) -> list[Revision]:
    async with storage.transaction() as tx:
        return list(await tx.revisions.list_for_engagement(engagement))


async def test_revisions_are_listed_by_number(storage: SqlStorage) -> None:
    engagement = await engagement_id(storage)
    sent_back = revision(
        engagement,
        1,
        comment="Please lower the hours",
        comment_by_id="manager-1",
        comment_by_name="Grace Hopper",
    )
    again = revision(engagement, 2, comment="And the budget", comment_by_id="manager-1")
    current = revision(engagement, 3)
    await add_revisions(storage, current, sent_back)  # stored out of order
    await add_revisions(storage, again)

    assert await list_revisions(storage, engagement) == [sent_back, again, current]
    assert await list_revisions(storage, engagement + 1000) == []


async def test_revisions_come_back_in_utc(storage: SqlStorage) -> None:
    engagement = await engagement_id(storage)
    created = datetime(2026, 11, 20, 14, 30, 15, 123456, tzinfo=CEST)
    await add_revisions(storage, revision(engagement, 1, created_at=created))

    (stored,) = await list_revisions(storage, engagement)

    assert stored.created_at == created and is_utc(stored.created_at)
    assert stored.created_at.hour == 12 and stored.created_at.microsecond == 123456


async def test_a_revision_with_a_naive_datetime_is_refused(storage: SqlStorage) -> None:
    engagement = await engagement_id(storage)
    with pytest.raises((ValueError, sa.exc.StatementError), match="naive"):
        await add_revisions(storage, revision(engagement, 1, created_at=datetime(2026, 11, 20)))


async def test_a_duplicate_revision_number_raises_stale_version(storage: SqlStorage) -> None:
    engagement = await engagement_id(storage)
    first = revision(engagement, 1, comment="Fix the dates")
    await add_revisions(storage, first)

    async with storage.transaction() as tx:
        with pytest.raises(StaleVersion):
            await tx.revisions.add(revision(engagement, 1, values={"other": "values"}))
        # Nothing was inserted and the transaction is still usable.
        await tx.revisions.add(revision(engagement, 2))
        await tx.commit()

    assert await list_revisions(storage, engagement) == [first, revision(engagement, 2)]


async def test_revisions_belong_to_their_engagement(storage: SqlStorage) -> None:
    first = await engagement_id(storage)
    second = await engagement_id(storage)
    await add_revisions(storage, revision(first, 1), revision(second, 1), revision(second, 2))

    assert await list_revisions(storage, first) == [revision(first, 1)]
    assert await list_revisions(storage, second) == [revision(second, 1), revision(second, 2)]


async def test_a_revision_added_without_commit_leaves_nothing(storage: SqlStorage) -> None:
    engagement = await engagement_id(storage)
    async with storage.transaction() as tx:
        await tx.revisions.add(revision(engagement, 1))
    assert await list_revisions(storage, engagement) == []
    await add_revisions(storage, revision(engagement, 1))  # the number is free


async def test_a_revision_of_an_engagement_that_does_not_exist_is_refused(
    storage: SqlStorage,
) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        await add_revisions(storage, revision(4242, 1))


async def test_revision_values_and_comments_keep_any_text(storage: SqlStorage) -> None:
    engagement = await engagement_id(storage)
    values = {
        "description": "Zeile eins\nZeile zwei\t«ü» ✓ " + "x" * 2000,
        "justification": "😀👩‍💻🇩🇪 family emoji and flags",
        "quotes": '"double" \'single\' \\backslash {"json": [1]}',
        "right_to_left": "שלום עולם",
        "nul and lone surrogate": "a\x00b\ud800c",
        "empty": "",
        "ключ 😀": "keys are text too",
    }
    item = revision(
        engagement,
        1,
        values=values,
        comment="Bitte «kürzer» 😀\n'; DROP TABLE engagement_revisions; --",
        comment_by_id="manager-1",
        comment_by_name="Zoë Ω 👩‍💼",
    )
    await add_revisions(storage, item)

    (stored,) = await list_revisions(storage, engagement)

    assert stored == item
    assert stored.values == values and list(stored.values) == list(values)  # key order kept


async def test_concurrent_adds_of_one_revision_let_exactly_one_through(
    storage: SqlStorage,
) -> None:
    engagement = await engagement_id(storage)
    adders = 5
    started = asyncio.Barrier(adders)

    async def add_after_barrier(n: int) -> bool:
        async with storage.transaction() as tx:
            await started.wait()
            try:
                await tx.revisions.add(revision(engagement, 2, values={"n": str(n)}))
            except StaleVersion:
                return False
            await asyncio.sleep(0.05)  # others meet the number while this is not committed
            await tx.commit()
            return True

    results = await asyncio.wait_for(
        asyncio.gather(*(add_after_barrier(n) for n in range(adders))), timeout=60
    )

    assert sorted(results) == [False] * (adders - 1) + [True]
    (stored,) = await list_revisions(storage, engagement)
    assert stored.values == {"n": str(results.index(True))}


# --- the rows go with their engagement -----------------------------------------------------------


async def test_deleting_an_engagement_deletes_its_cards_and_revisions(
    storage: SqlStorage,
) -> None:
    gone = await engagement_id(storage)
    kept = await engagement_id(storage)
    await add_cards(storage, card(gone, "1"), card(kept, "2"))
    await add_revisions(storage, revision(gone, 1), revision(kept, 1))

    async with storage.engine.begin() as connection:
        await connection.execute(sa.delete(engagements).where(engagements.c.id == gone))

    assert await list_cards(storage, gone) == [] and await list_revisions(storage, gone) == []
    assert await list_cards(storage, kept) == [card(kept, "2")]
    assert await list_revisions(storage, kept) == [revision(kept, 1)]
