"""The migrations build exactly the schema the models describe, and run both ways."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from nestauth import db, migrations
from nestauth.models import Base


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

    def test_downgrade_then_upgrade_round_trips(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'round-trip.db'}"
        migrations.upgrade(url)
        migrations.downgrade(url, "base")
        engine = sa.create_engine(db.sync_url(url))
        with engine.connect() as conn:
            assert set(sa.inspect(conn).get_table_names()) == {"alembic_version"}
        engine.dispose()
        migrations.upgrade(url)
        assert differences(url) == []
