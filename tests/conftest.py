"""One migrated database and one running app per backend; tables wiped before each test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from nestauth.app import create_app
from tests.support import Api, database_backends, fresh_database, make_settings


def pytest_configure(config: pytest.Config) -> None:
    """Servers and CLI runs that tests start hash passwords at the cheap test cost too (the
    production profile is exercised by tests that say so)."""
    os.environ.setdefault("NESTAUTH_PASSWORD_HASH_PROFILE", "test")


@pytest.fixture(scope="session", params=database_backends())
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with fresh_database(request.param, tmp_path_factory.mktemp(request.param)) as url:
        yield url


@pytest.fixture(scope="session")
def session_api(database_url: str) -> Iterator[Api]:
    settings = make_settings(database_url)
    app = create_app(settings)
    # A peer with an IP address, as a server sees (Starlette's default is "testclient").
    with app.test_client(client=("127.0.0.1", 50000)) as client:
        yield Api(app=app, client=client, base_settings=settings)


@pytest.fixture
def api(session_api: Api) -> Iterator[Api]:
    session_api.reset()
    session_api.client.cookies.clear()
    yield session_api
    session_api.client.cookies.clear()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `postgresql_only` (a TCP link to cut, say) are not collected for SQLite."""
    keep, drop = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        backend = params.params.get("database_url") if params else None
        only_pg = item.get_closest_marker("postgresql_only") is not None
        (drop if only_pg and backend != "postgresql" else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
