"""Fixtures for the storage contract suite: one `storage` per test, on SQLite (a temp file) and on
PostgreSQL (a throwaway database for the session, a fresh schema per test)."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from storage.db import normalize_database_url
from storage.migrate import upgrade_database
from storage.repositories import SqlStorage, open_storage
from tests.support.required import skip_or_fail

DEFAULT_TEST_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"

T = TypeVar("T")


@dataclass
class FakeClock:
    """What enqueue() stamps as created_at and default run_at; tests move `current`."""

    current: datetime

    def now(self) -> datetime:
        return self.current


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 3, 1, 9, 0, tzinfo=UTC))


def _run_aside(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on a loop in another thread, so it cannot disturb the
    event loop pytest-asyncio keeps for the tests (asyncio.run would reset it)."""

    async def run() -> T:
        return await make()

    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(asyncio.run, run()).result()


def _asyncpg_dsn(url: str) -> str:
    """asyncpg.connect() wants libpq's form, without SQLAlchemy's driver suffix."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _create_database(admin_url: str, name: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(admin_url), timeout=5)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def _drop_database(admin_url: str, name: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(admin_url), timeout=5)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of its own for this test session, dropped at the end."""
    admin_url = normalize_database_url(
        os.environ.get("TEST_POSTGRES_URL", DEFAULT_TEST_POSTGRES_URL)
    )
    name = f"fc_test_{secrets.token_hex(6)}"
    try:
        _run_aside(lambda: _create_database(admin_url, name))
    except (TimeoutError, OSError, asyncpg.PostgresError) as error:
        where = make_url(admin_url).render_as_string(hide_password=True)
        message = f"PostgreSQL at {where} is not usable ({error!r}); set TEST_POSTGRES_URL"
        skip_or_fail(message)
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _run_aside(lambda: _drop_database(admin_url, name))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """An empty database: a new SQLite file, or the session's PostgreSQL database with an empty
    public schema."""
    if request.param == "sqlite":
        folder = tmp_path_factory.mktemp("sqlite")
        return f"sqlite:///{folder / 'fc.db'}"
    url: str = request.getfixturevalue("postgres_url")
    await _reset_schema(url)
    return url


async def _reset_schema(url: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    try:
        await connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await connection.close()


@pytest.fixture
async def storage(database_url: str, clock: FakeClock) -> AsyncIterator[SqlStorage]:
    """Storage on a freshly migrated database (so every test also runs the migrations)."""
    await upgrade_database(database_url)
    storage = await open_storage(database_url, migrate=False, clock=clock)
    try:
        yield storage
    finally:
        await storage.close()
