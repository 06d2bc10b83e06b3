"""Database URLs and engines: SQLite (aiosqlite) for dev, PostgreSQL (asyncpg) for production."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/freelance-connector.db"

# How long a SQLite writer waits for another one to finish before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000

_POSTGRES_PREFIXES = ("postgresql://", "postgres://", "postgresql+asyncpg://")


def normalize_database_url(url: str) -> str:
    """Point the URLs people paste (Heroku/Azure style `postgres://...?sslmode=require`,
    `sqlite:///file.db`) at the async drivers this package uses."""
    url = url.strip()
    if url.startswith(_POSTGRES_PREFIXES):
        rest = url.split("://", 1)[1]
        return _libpq_ssl_to_asyncpg("postgresql+asyncpg://" + rest)
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


def _libpq_ssl_to_asyncpg(url: str) -> str:
    # asyncpg rejects libpq's `sslmode` keyword; it takes the same values as `ssl`.
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if not any(key == "sslmode" for key, _ in query):
        return url
    query = [("ssl" if key == "sslmode" else key, value) for key, value in query]
    return urlunsplit(parts._replace(query=urlencode(query)))


def make_engine(url: str = DEFAULT_DATABASE_URL, **options: Any) -> AsyncEngine:
    """An async engine for `url` (normalized first). `options` go to create_async_engine and
    override the defaults chosen here."""
    url = normalize_database_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        _create_parent_folder(parsed.database)
        engine = create_async_engine(url, **options)
        event.listen(engine.sync_engine, "connect", _configure_sqlite_connection)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if "poolclass" in options:  # e.g. NullPool, which rejects the sizing arguments below
            return create_async_engine(url, **options)
        settings: dict[str, Any] = {
            "pool_size": 10,
            "max_overflow": 10,
            "pool_timeout": 30,
            # Managed PostgreSQL and proxies drop idle connections; check before use.
            "pool_pre_ping": True,
            "pool_recycle": 1800,
        }
        settings.update(options)
        return create_async_engine(url, **settings)
    return create_async_engine(url, **options)


def _create_parent_folder(database: str | None) -> None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers run while one writer writes; the busy timeout makes concurrent
        # writers queue up instead of failing at once with "database is locked".
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()
