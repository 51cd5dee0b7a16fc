"""nestauth.db picks its own drivers: users write plain sqlite:/// and postgresql:// URLs."""

from __future__ import annotations

import pytest

from nestauth.db import async_url, is_sqlite, sync_url


class TestAsyncUrl:
    def test_sqlite_file_gets_aiosqlite(self) -> None:
        url = async_url("sqlite:///var/nestauth.db")
        assert url.drivername == "sqlite+aiosqlite"
        assert url.database == "var/nestauth.db"

    def test_sqlite_absolute_path_kept(self) -> None:
        assert async_url("sqlite:////srv/nestauth.db").database == "/srv/nestauth.db"

    @pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg2"])
    def test_postgresql_gets_psycopg(self, scheme: str) -> None:
        url = async_url(f"{scheme}://app:pw@db.example.com:5433/nestauth?sslmode=require")
        assert url.drivername == "postgresql+psycopg"
        assert (url.username, url.password, url.host, url.port, url.database) == (
            "app", "pw", "db.example.com", 5433, "nestauth",
        )  # fmt: skip
        assert url.query == {"sslmode": "require"}

    def test_driver_already_async_is_kept(self) -> None:
        assert async_url("sqlite+aiosqlite:///x.db").drivername == "sqlite+aiosqlite"

    @pytest.mark.parametrize(
        "url", ["mysql://app@db/nestauth", "oracle://app@db/x", "mssql+pyodbc://app@db/x"]
    )
    def test_unsupported_scheme_raises(self, url: str) -> None:
        with pytest.raises(ValueError, match="unsupported database"):
            async_url(url)


class TestSyncUrl:
    def test_sqlite_uses_the_blocking_driver(self) -> None:
        url = sync_url("sqlite:///x.db")
        assert url.drivername == "sqlite"
        assert url.database == "x.db"

    @pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
    def test_postgresql_uses_psycopg(self, scheme: str) -> None:
        assert sync_url(f"{scheme}://app@db/nestauth").drivername == "postgresql+psycopg"

    def test_unsupported_scheme_raises(self) -> None:
        with pytest.raises(ValueError):
            sync_url("mysql://app@db/nestauth")


class TestIsSqlite:
    def test_by_backend(self) -> None:
        assert is_sqlite("sqlite:///x.db")
        assert is_sqlite(async_url("sqlite:///x.db"))
        assert not is_sqlite("postgresql://app@db/nestauth")
