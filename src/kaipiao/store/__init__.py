"""Persistence: SQLAlchemy Core tables, the database handle, repositories, Alembic migrations.

SQLite (WAL, synchronous=FULL) is the embedded default; PostgreSQL (asyncpg) is production.
"""
