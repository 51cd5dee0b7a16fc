"""The migrations build exactly the schema the models describe, and run both ways."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from nestauth import db, migrations
from nestauth.models import Base
from tests.support import database_backends, empty_database


def differences(url: str) -> list[object]:
    engine = sa.create_engine(db.sync_url(url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


class TestMigrations:
    def test_migrated_schema_matches_the_models(self, database_url: str) -> None:
        assert differences(database_url) == []

    @pytest.mark.parametrize("backend", database_backends())
    def test_downgrade_then_upgrade_round_trips(self, backend: str, tmp_path: Path) -> None:
        with empty_database(backend, tmp_path) as url:
            migrations.upgrade(url)
            migrations.downgrade(url, "base")
            engine = sa.create_engine(db.sync_url(url))
            with engine.connect() as conn:
                assert set(sa.inspect(conn).get_table_names()) == {"alembic_version"}
            engine.dispose()
            migrations.upgrade(url)
            assert differences(url) == []


@pytest.mark.parametrize("backend", database_backends())
def test_four_processes_can_upgrade_at_once(backend: str, tmp_path: Path) -> None:
    with empty_database(backend, tmp_path) as url:
        env = {**os.environ, "NESTAUTH_DATABASE_URL": url, "NESTAUTH_VAR_DIR": str(tmp_path)}
        command = [sys.executable, "-m", "nestauth.cli", "db", "upgrade"]
        upgrades = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(4)
        ]
        results = [(p.wait(timeout=120), p.stderr.read().decode()) for p in upgrades]  # type: ignore[union-attr]
        assert [code for code, _ in results] == [0] * 4, results
        assert differences(url) == []


@pytest.mark.postgresql_only
def test_postgresql_uses_native_uuid_json_and_timestamp_types(database_url: str) -> None:
    engine = sa.create_engine(db.sync_url(database_url))
    try:
        with engine.connect() as conn:
            columns = {
                (table, column["name"]): type(column["type"]).__name__
                for table in ("users", "audit_events", "totp_devices")
                for column in sa.inspect(conn).get_columns(table)
            }
    finally:
        engine.dispose()
    assert columns[("users", "id")] == "UUID"
    assert columns[("audit_events", "details")] == "JSONB"
    assert columns[("users", "metadata")] == "JSONB"
    assert columns[("totp_devices", "created_at")] == "TIMESTAMP"
    with engine.connect() as conn:
        timezone_aware = conn.scalar(
            sa.text(
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_name = 'totp_devices' AND column_name = 'created_at' "
                "AND table_schema = current_schema()"
            )
        )
    engine.dispose()
    assert timezone_aware == "timestamp with time zone"
