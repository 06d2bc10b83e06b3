"""Apply the Alembic migrations in storage/migrations from code: no alembic.ini needed.

`python -m storage.migrate [URL]` upgrades URL (default: $DATABASE_URL, else the dev SQLite file).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from storage.db import DEFAULT_DATABASE_URL, make_engine, normalize_database_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Replicas that start together must not run the migrations twice at once; on PostgreSQL they
# queue on this advisory lock (any constant works, it only has to be ours).
_MIGRATION_LOCK_KEY = 0x46435F4D494752  # "FC_MIGR"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic Config built in code, for `alembic.command.*` (e.g. `revision`)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser treats % as interpolation; URL-encoded passwords contain it.
        config.set_main_option("sqlalchemy.url", normalize_database_url(url).replace("%", "%%"))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade_engine(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate the database behind `engine` to `revision`. A no-op when it is there already."""
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Held until this transaction ends; PostgreSQL's DDL is transactional, so a
            # replica that waited here finds the schema complete and does nothing.
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
        await connection.run_sync(_upgrade, revision)


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


async def upgrade_database(url: str) -> None:
    """Apply all migrations to the database at `url`; safe to call on every start."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        await upgrade_engine(engine)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    url = args[0] if args else os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    asyncio.run(upgrade_database(url))
    print(f"database at revision {head_revision()}")


if __name__ == "__main__":
    main()
