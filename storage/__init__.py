"""Persistence: SQLAlchemy 2 (async) repositories on SQLite or PostgreSQL, Alembic migrations and
the durable job table with leases. May import core, SQLAlchemy, alembic, the drivers and stdlib.
"""
