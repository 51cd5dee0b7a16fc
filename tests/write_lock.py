"""A write lock held by another connection, as another process (the CLI, a backup) holds
it: SQLite's file-wide BEGIN IMMEDIATE; on PostgreSQL, every table locked against writes
(EXCLUSIVE mode still lets readers in)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url

from nestauth import db
from nestauth.models import Base


@contextmanager
def held_write_lock(database_url: str) -> Iterator[None]:
    url = make_url(database_url)
    if db.is_sqlite(url):
        holder = sqlite3.connect(str(url.database), isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            yield
        finally:
            holder.rollback()
            holder.close()
        return
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as holder:  # one transaction until the block ends
        tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
        holder.execute(f"LOCK TABLE {tables} IN EXCLUSIVE MODE")
        yield
        holder.rollback()
