"""Alembic migrations, run programmatically by `nestauth db upgrade` and `nestauth serve`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from nestauth import db

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Alembic's ini interpolation treats % specially; URLs may contain %-escapes.
    url = db.sync_url(database_url).render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    if db.is_sqlite(db.async_url(database_url)):
        _ensure_sqlite_directory(database_url)
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def _ensure_sqlite_directory(database_url: str) -> None:
    database = db.async_url(database_url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
