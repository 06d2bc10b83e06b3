"""A PostgreSQL database of a test's own, on the server TEST_POSTGRES_URL names (the contract
suite's variable; the local server's `test` database by default).

    async with scratch_database("fc_fuzz") as url:   # postgresql+asyncpg://.../fc_fuzz_1a2b3c
        app = await build_app(e2e_settings(tmp_path, database_url=url))

Without a usable server the test is skipped, or fails under CI=true (tests/support/required.py).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator

import asyncpg
from sqlalchemy.engine import make_url

from storage.db import normalize_database_url
from tests.support.required import skip_or_fail

DEFAULT_TEST_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def _admin_url() -> str:
    return normalize_database_url(os.environ.get("TEST_POSTGRES_URL", DEFAULT_TEST_POSTGRES_URL))


async def _execute(sql: str) -> None:
    dsn = make_url(_admin_url()).set(drivername="postgresql")
    connection = await asyncpg.connect(dsn.render_as_string(hide_password=False), timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def scratch_database(prefix: str) -> AsyncIterator[str]:
    """Create an empty database, yield its URL, drop it (with FORCE) when the block ends."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    try:
        await _execute(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as error:
        skip_or_fail(f"PostgreSQL is not usable ({error!r}); set TEST_POSTGRES_URL")
    try:
        yield make_url(_admin_url()).set(database=name).render_as_string(hide_password=False)
    finally:
        await _execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
