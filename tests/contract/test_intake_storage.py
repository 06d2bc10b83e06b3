"""Intake storage (issue 5), on SQLite and PostgreSQL: the form's engagement fields, tenant
policy settings and intake drafts, and migration 0005 over engagements stored before it."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from core.model import DataClassification, Engagement, IntakeDraft, PolicySetting
from storage.db import make_engine
from storage.migrate import alembic_config, upgrade_engine
from storage.repositories import SqlStorage, engagement_columns, open_storage
from storage.tables import engagements
from tests.contract.test_storage_contract import add, get, make_engagement, save

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CEST = timezone(timedelta(hours=2))


def is_utc(value: datetime) -> bool:
    return value.utcoffset() == timedelta(0)


# --- engagements: the form's fields --------------------------------------------------------------


@pytest.mark.parametrize("classification", list(DataClassification))
async def test_each_data_classification_round_trips_as_the_enum(
    storage: SqlStorage, classification: DataClassification
) -> None:
    added = await add(storage, data_classification=classification)
    stored = await get(storage, added.id)
    assert stored is not None
    assert stored.data_classification is classification


@pytest.mark.parametrize(
    "budget",
    [
        Decimal("1500.50"),
        Decimal("1500.00"),  # trailing zeros are kept
        Decimal("0.01"),
        Decimal("0"),
        Decimal("123456789012345678.99"),  # beyond a float's precision
        None,
    ],
)
async def test_budget_round_trips_as_the_same_decimal(
    storage: SqlStorage, budget: Decimal | None
) -> None:
    added = await add(storage, budget=budget)
    stored = await get(storage, added.id)
    assert stored is not None
    assert stored.budget == budget
    assert str(stored.budget) == str(budget)  # the same digits, not just the same value


async def test_budget_is_stored_as_fixed_point_text(storage: SqlStorage) -> None:
    added = await add(storage, budget=Decimal("1.5E+3"))
    async with storage.engine.connect() as connection:
        text = (
            await connection.execute(
                sa.select(engagements.c.budget).where(engagements.c.id == added.id)
            )
        ).scalar_one()
    assert text == "1500"
    stored = await get(storage, added.id)
    assert stored is not None and stored.budget == Decimal("1500")


@pytest.mark.parametrize("budget", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_a_budget_that_is_not_an_amount_is_refused(budget: Decimal) -> None:
    with pytest.raises(ValueError, match="not an amount"):
        engagement_columns(make_engagement(budget=budget))


async def test_intake_fields_round_trip_and_update(storage: SqlStorage) -> None:
    added = await add(
        storage,
        justification="Launch in March ✓\n" + "é" * 2000,
        freelancer_org="Lance & Co. 😀",
        profile_url="https://www.linkedin.com/in/fred-lance?x=1&y=%C3%A9",
        data_classification=DataClassification.PUBLIC,
        budget=Decimal("99.95"),
        hours=0,
        time_zone="America/Argentina/Buenos_Aires",
    )
    assert await get(storage, added.id) == added

    changed = dataclasses.replace(
        added,
        justification="",
        freelancer_org=None,
        profile_url=None,
        data_classification=DataClassification.CONFIDENTIAL,
        budget=None,
        hours=None,
        time_zone=None,
    )
    saved = await save(storage, changed)
    assert await get(storage, added.id) == saved == dataclasses.replace(changed, version=2)


async def test_minimal_engagement_gets_the_intake_defaults(storage: SqlStorage) -> None:
    stored = await get(storage, (await add(storage)).id)
    assert stored is not None
    assert stored.justification == ""
    assert stored.data_classification is DataClassification.INTERNAL
    assert (stored.freelancer_org, stored.profile_url, stored.budget) == (None, None, None)
    assert (stored.hours, stored.time_zone) == (None, None)


# --- migration 0005 ------------------------------------------------------------------------------

INTAKE_COLUMNS = {
    "justification",
    "freelancer_org",
    "profile_url",
    "data_classification",
    "budget",
    "hours",
    "time_zone",
}
INTAKE_TABLES = {"tenant_policy_settings", "intake_drafts"}


async def downgrade_engine(engine: AsyncEngine, revision: str) -> None:
    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)


async def insert_with_columns_of_the_time(engine: AsyncEngine, engagement: Engagement) -> int:
    """Insert a row with only the columns the engagements table has at the database's current
    revision, as that revision's code did (later migrations add the rest)."""
    _, columns = await schema(engine)
    values = {
        name: value for name, value in engagement_columns(engagement).items() if name in columns
    }
    async with engine.begin() as connection:
        result = await connection.execute(
            sa.insert(engagements).values(**values, version=1).returning(engagements.c.id)
        )
        return int(result.scalar_one())


async def assert_ids_never_repeat(engine: AsyncEngine) -> None:
    """After a downgrade: SQLite's engagements table kept AUTOINCREMENT (a downgrade that
    rebuilt it without would let ids of deleted engagements be used again)."""
    if engine.dialect.name != "sqlite":
        return
    async with engine.connect() as connection:
        sql = await connection.scalar(
            sa.text("SELECT sql FROM sqlite_master WHERE name = 'engagements'")
        )
    assert "AUTOINCREMENT" in sql.upper()


async def schema(engine: AsyncEngine) -> tuple[set[str], set[str]]:
    """The tables, and the engagements table's columns."""
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: (
                set(sa.inspect(sync).get_table_names()),
                {column["name"] for column in sa.inspect(sync).get_columns("engagements")},
            )
        )


async def test_engagements_stored_before_0005_get_the_defaults(database_url: str) -> None:
    engine = make_engine(database_url, poolclass=NullPool)
    try:
        await upgrade_engine(engine, "0004")
        assert not INTAKE_COLUMNS & (await schema(engine))[1]
        old_id = await insert_with_columns_of_the_time(engine, make_engagement())
        await upgrade_engine(engine)
    finally:
        await engine.dispose()

    storage = await open_storage(database_url, migrate=False)
    try:
        stored = await get(storage, old_id)
    finally:
        await storage.close()
    assert stored == dataclasses.replace(make_engagement(), id=old_id, version=1)
    assert stored.justification == ""
    assert stored.data_classification is DataClassification.INTERNAL


async def test_0005_downgrades_and_upgrades_again_keeping_engagements(database_url: str) -> None:
    engine = make_engine(database_url, poolclass=NullPool)
    try:
        await upgrade_engine(engine)
        storage = await open_storage(database_url, migrate=False)
        try:
            first = await add(storage, budget=Decimal("10.00"), justification="why")
            async with storage.transaction() as tx:
                await tx.drafts.save(draft())
                await tx.commit()
        finally:
            await storage.close()

        await downgrade_engine(engine, "0004")
        tables, columns = await schema(engine)
        assert not INTAKE_TABLES & tables and not INTAKE_COLUMNS & columns
        await assert_ids_never_repeat(engine)

        await upgrade_engine(engine)
        tables, columns = await schema(engine)
        assert INTAKE_TABLES <= tables and INTAKE_COLUMNS <= columns
    finally:
        await engine.dispose()

    storage = await open_storage(database_url, migrate=False)
    try:
        stored = await get(storage, first.id)
        later = await add(storage)
    finally:
        await storage.close()
    # The intake values went with the downgrade; the engagement itself stayed.
    assert stored == dataclasses.replace(first, budget=None, justification="")
    assert first.id is not None and later.id is not None and later.id > first.id


# --- tenant policy settings ----------------------------------------------------------------------


def setting(key: str, value: Any, *, at: datetime = T0, by: str = "admin-1") -> PolicySetting:
    return PolicySetting(key, value, by, f"Admin {by} ✓", at)


async def put(storage: SqlStorage, tenant_id: str, *settings: PolicySetting) -> None:
    async with storage.transaction() as tx:
        for item in settings:
            await tx.policies.put(tenant_id, item)
        await tx.commit()


async def get_all(storage: SqlStorage, tenant_id: str) -> list[PolicySetting]:
    async with storage.transaction() as tx:
        return list(await tx.policies.get_all(tenant_id))


async def remove(storage: SqlStorage, tenant_id: str, key: str) -> bool:
    async with storage.transaction() as tx:
        removed = await tx.policies.remove(tenant_id, key)
        await tx.commit()
    return removed


async def test_policy_settings_are_listed_by_key(storage: SqlStorage) -> None:
    assert await get_all(storage, "tenant-1") == []
    max_days = setting("max_duration_days", 180)
    allowed = setting("allowed_domains", ["contoso.com", "fabrikam.com"])
    await put(storage, "tenant-1", max_days, allowed)

    assert await get_all(storage, "tenant-1") == [allowed, max_days]


async def test_put_replaces_the_value_and_who_set_it(storage: SqlStorage) -> None:
    await put(storage, "tenant-1", setting("max_duration_days", 180))
    later = setting("max_duration_days", 90, at=T0 + timedelta(days=1), by="admin-2")
    await put(storage, "tenant-1", later)

    assert await get_all(storage, "tenant-1") == [later]


async def test_remove_forgets_a_key_and_says_whether_it_was_set(storage: SqlStorage) -> None:
    keep = setting("channel_prefix", "fl-")
    await put(storage, "tenant-1", setting("max_duration_days", 180), keep)

    assert await remove(storage, "tenant-1", "max_duration_days") is True
    assert await remove(storage, "tenant-1", "max_duration_days") is False
    assert await remove(storage, "tenant-1", "never_set") is False
    assert await get_all(storage, "tenant-1") == [keep]


async def test_policy_settings_of_tenants_are_separate(storage: SqlStorage) -> None:
    first = setting("max_duration_days", 180)
    second = setting("max_duration_days", 30, by="admin-9")
    await put(storage, "tenant-1", first)
    await put(storage, "tenant-2", second)

    assert await get_all(storage, "tenant-1") == [first]
    assert await get_all(storage, "tenant-2") == [second]
    assert await remove(storage, "tenant-2", "max_duration_days") is True
    assert await get_all(storage, "tenant-1") == [first]
    assert await get_all(storage, "tenant-2") == []


@pytest.mark.parametrize(
    "value",
    [
        "fl-",
        "",
        "Zürich «ü» 😀 \\ \" '",
        0,
        -7,
        2**53 + 1,  # beyond a double's exact integers
        True,
        False,
        [],
        ["contoso.com", "fabrikam.com", "bücher.example"],
        {},
        {"public": "anyone", "confidential": "managers only 😀"},
        None,
    ],
    ids=repr,
)
async def test_policy_values_round_trip_with_their_json_type(
    storage: SqlStorage, value: Any
) -> None:
    await put(storage, "tenant-1", setting("some_key", value))
    (stored,) = await get_all(storage, "tenant-1")
    assert stored.value == value
    assert type(stored.value) is type(value)  # True stays True, not 1
    assert is_utc(stored.updated_at)


async def test_a_policy_value_that_is_not_json_is_refused(storage: SqlStorage) -> None:
    async with storage.transaction() as tx:
        with pytest.raises(TypeError):
            await tx.policies.put("tenant-1", setting("domains", {"contoso.com"}))
        with pytest.raises(ValueError):
            await tx.policies.put("tenant-1", setting("ratio", float("nan")))


async def test_a_policy_put_not_committed_leaves_nothing(storage: SqlStorage) -> None:
    async with storage.transaction() as tx:
        await tx.policies.put("tenant-1", setting("max_duration_days", 180))
    assert await get_all(storage, "tenant-1") == []


# --- intake drafts -------------------------------------------------------------------------------


def draft(**changes: Any) -> IntakeDraft:
    values = {
        "project_title": "Website relaunch",
        "freelancer_email": "fred@example.org",
        "justification": "Two people short",
    }
    made = IntakeDraft(
        tenant_id="tenant-1",
        user_id="user-1",
        values=values,
        time_zone="Europe/Berlin",
        created_at=T0,
        updated_at=T0,
    )
    return dataclasses.replace(made, **changes)


async def save_draft(storage: SqlStorage, item: IntakeDraft) -> IntakeDraft:
    async with storage.transaction() as tx:
        saved = await tx.drafts.save(item)
        await tx.commit()
    return saved


async def get_draft(storage: SqlStorage, tenant_id: str, user_id: str) -> IntakeDraft | None:
    async with storage.transaction() as tx:
        return await tx.drafts.get(tenant_id, user_id)


async def test_a_new_draft_is_saved_as_version_1(storage: SqlStorage) -> None:
    new = draft(version=7)  # the caller's version is not what counts

    saved = await save_draft(storage, new)

    assert saved == dataclasses.replace(new, version=1)
    assert await get_draft(storage, "tenant-1", "user-1") == saved


async def test_saving_again_replaces_the_values_and_keeps_created_at(
    storage: SqlStorage,
) -> None:
    await save_draft(storage, draft())
    later = draft(
        values={"project_title": "Shop relaunch"},  # the other keys are gone
        time_zone=None,
        previewed=True,
        created_at=T0 + timedelta(hours=1),
        updated_at=T0 + timedelta(hours=1),
        version=1,
    )

    saved = await save_draft(storage, later)

    assert saved == dataclasses.replace(later, created_at=T0, version=2)
    assert await get_draft(storage, "tenant-1", "user-1") == saved


async def test_drafts_come_back_in_utc(storage: SqlStorage) -> None:
    created = datetime(2026, 11, 20, 14, 30, 15, 123456, tzinfo=CEST)
    await save_draft(storage, draft(created_at=created, updated_at=created))

    stored = await get_draft(storage, "tenant-1", "user-1")

    assert stored is not None
    assert stored.created_at == stored.updated_at == created
    assert is_utc(stored.created_at) and is_utc(stored.updated_at)
    assert stored.created_at.hour == 12 and stored.created_at.microsecond == 123456


async def test_a_draft_belongs_to_one_user_of_one_tenant(storage: SqlStorage) -> None:
    mine = await save_draft(storage, draft())
    other_tenant = await save_draft(storage, draft(tenant_id="tenant-2", values={"a": "b"}))

    assert await get_draft(storage, "tenant-1", "user-2") is None
    assert await get_draft(storage, "tenant-3", "user-1") is None
    assert await get_draft(storage, "tenant-1", "user-1") == mine
    assert await get_draft(storage, "tenant-2", "user-1") == other_tenant
    assert other_tenant.version == 1  # its own row, not a second version of mine


async def test_delete_says_whether_there_was_a_draft(storage: SqlStorage) -> None:
    await save_draft(storage, draft())
    await save_draft(storage, draft(user_id="user-2"))

    async with storage.transaction() as tx:
        assert await tx.drafts.delete("tenant-1", "user-1") is True
        assert await tx.drafts.delete("tenant-1", "user-1") is False
        assert await tx.drafts.delete("tenant-2", "user-2") is False
        await tx.commit()

    assert await get_draft(storage, "tenant-1", "user-1") is None
    assert await get_draft(storage, "tenant-1", "user-2") is not None
    assert (await save_draft(storage, draft())).version == 1  # a new draft starts again


async def test_prune_deletes_drafts_last_updated_before_the_cutoff(storage: SqlStorage) -> None:
    cutoff = T0 - timedelta(days=30)
    await save_draft(storage, draft(user_id="old", updated_at=cutoff - timedelta(seconds=1)))
    await save_draft(storage, draft(user_id="at-cutoff", updated_at=cutoff))
    # Created long ago, but touched since: kept.
    await save_draft(
        storage, draft(user_id="touched", created_at=cutoff - timedelta(days=9), updated_at=T0)
    )

    async with storage.transaction() as tx:
        assert await tx.drafts.prune(cutoff) == 1
        await tx.commit()
    async with storage.transaction() as tx:
        assert await tx.drafts.prune(cutoff) == 0

    assert await get_draft(storage, "tenant-1", "old") is None
    assert await get_draft(storage, "tenant-1", "at-cutoff") is not None
    assert await get_draft(storage, "tenant-1", "touched") is not None


async def test_draft_values_keep_any_text(storage: SqlStorage) -> None:
    values = {
        "description": "Zeile eins\nZeile zwei\t«ü» ✓ " + "x" * 2000,
        "justification": "😀👩‍💻🇩🇪 family emoji and flags",
        "quotes": '"double" \'single\' \\backslash {"json": [1]}',
        "right_to_left": "שלום עולם",
        "empty": "",
        "ключ 😀": "keys are text too",
    }
    saved = await save_draft(storage, draft(values=values))

    stored = await get_draft(storage, "tenant-1", "user-1")

    assert stored == saved
    assert stored is not None and stored.values == values


async def test_a_draft_saved_without_commit_leaves_nothing(storage: SqlStorage) -> None:
    async with storage.transaction() as tx:
        await tx.drafts.save(draft())
    assert await get_draft(storage, "tenant-1", "user-1") is None


async def test_concurrent_saves_of_one_draft_all_succeed_with_their_own_versions(
    storage: SqlStorage,
) -> None:
    saves = 10
    saved = await asyncio.gather(
        *(
            save_draft(storage, draft(values={"n": str(n)}, created_at=T0 + timedelta(minutes=n)))
            for n in range(saves)
        )
    )

    assert sorted(item.version for item in saved) == list(range(1, saves + 1))
    # Every save kept the created_at of the first one to commit.
    first = next(item for item in saved if item.version == 1)
    assert {item.created_at for item in saved} == {first.created_at}
    stored = await get_draft(storage, "tenant-1", "user-1")
    last = next(item for item in saved if item.version == saves)
    assert stored == last
