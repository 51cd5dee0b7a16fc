"""Tripwires for an upgrade: each fails when a dependency moves out from under us.

`nestauth.fair_pool` subclasses SQLAlchemy's queue and pool internals and
`nestauth.sqlite_inline` stands in for aiosqlite behind SQLAlchemy's aiosqlite adapter,
private attributes included. Neither is public API; a minor release may change either.
A failure here names what changed: adapt the module, rerun the suite, then widen the
bound in pyproject.toml.
"""

from __future__ import annotations

import inspect
import re
import sqlite3
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import sqlalchemy
from packaging.requirements import Requirement
from packaging.version import Version
from sqlalchemy.connectors import asyncio as adapt
from sqlalchemy.dialects.sqlite import aiosqlite as aiosqlite_dialect
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util import queue

from nestauth.fair_pool import FairAsyncQueuePool, FairQueue
from nestauth.sqlite_inline import InlineConnection, InlineCursor

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def declared_requirements() -> list[Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return [Requirement(line) for line in project["dependencies"]] + [
        Requirement(line) for line in project["optional-dependencies"]["test"]
    ]


@pytest.mark.parametrize("requirement", declared_requirements(), ids=str)
def test_installed_version_is_inside_the_declared_range(requirement: Requirement) -> None:
    """The suite vouches only for the ranges it ran on."""
    installed = metadata.version(requirement.name)
    assert requirement.specifier.contains(installed, prereleases=True), (
        f"{requirement.name} {installed} is outside {requirement.specifier}: run the suite on "
        "it, adapt what fails, then widen the bound in pyproject.toml"
    )


@pytest.mark.parametrize("requirement", declared_requirements(), ids=str)
def test_declared_range_is_the_installed_minor_release(requirement: Requirement) -> None:
    """Neither the next minor release nor the previous one: fair_pool, for one, needs
    SQLAlchemy 2.1 (util.await_), which a `>=2.0.30` bound did not promise."""
    major, minor = Version(metadata.version(requirement.name)).release[:2]
    before = f"{major}.{minor - 1}.999" if minor else f"{major - 1}.999"
    for outside in (f"{major}.{minor + 1}.0", before):
        assert not requirement.specifier.contains(outside, prereleases=True), (
            f"{requirement} admits {outside}, a release the suite has not run on"
        )


class TestFairPool:
    def test_sqlalchemy_2_1(self) -> None:
        assert sqlalchemy.__version__.startswith("2.1."), sqlalchemy.__version__

    def test_await_is_in_sqlalchemy_util(self) -> None:
        from sqlalchemy.util import await_  # 2.0 spelled it await_only

        assert callable(await_)

    def test_fair_queue_overrides_every_queue_method(self) -> None:
        """A method QueueCommon gains would otherwise fall through to a stub."""
        methods = {
            name
            for name, value in vars(queue.QueueCommon).items()
            if inspect.isfunction(value) and (name == "__init__" or not name.startswith("_"))
        }
        assert methods, "QueueCommon declares no methods any more"
        assert methods <= set(vars(FairQueue)), methods - set(vars(FairQueue))

    def test_the_pool_builds_its_queue_from_queue_class(self) -> None:
        assert "_queue_class" in vars(AsyncAdaptedQueuePool)
        pool = FairAsyncQueuePool(lambda: sqlite3.connect(":memory:"), pool_size=1)
        assert isinstance(pool._pool, FairQueue)
        assert (pool.size(), pool.checkedin()) == (1, 0)  # maxsize and qsize, as read


def _attributes_used(classes: list[type], holder: str) -> set[str]:
    """Attribute names the adapter reads on `self.<holder>` (the aiosqlite object)."""
    source = "\n".join(inspect.getsource(cls) for cls in classes)
    return set(re.findall(rf"self\.{holder}\.(\w+)", source))


class TestSqliteInlineAdapter:
    # Server-side cursors (`stream()`) are never used on SQLite here.
    NOT_NEEDED = {"__aiter__"}

    def test_adapter_classes_are_where_we_expect(self) -> None:
        assert issubclass(
            aiosqlite_dialect.AsyncAdapt_aiosqlite_connection, adapt.AsyncAdapt_dbapi_connection
        )
        assert issubclass(
            aiosqlite_dialect.AsyncAdapt_aiosqlite_cursor, adapt.AsyncAdapt_dbapi_cursor
        )

    def test_inline_connection_has_what_the_adapter_reads(self) -> None:
        used = _attributes_used(
            [
                adapt.AsyncAdapt_dbapi_connection,
                aiosqlite_dialect.AsyncAdapt_aiosqlite_connection,
            ],
            "_connection",
        ) | {"cursor"}  # called as `connection.cursor()` in _make_new_cursor
        assert {"_tx", "_conn", "isolation_level", "commit", "stop"} <= used  # still scanned
        connection = InlineConnection(sqlite3.connect(":memory:"), 0.1)
        try:
            missing = {name for name in used if not hasattr(connection, name)}
        finally:
            connection.stop()
        assert missing == set()

    def test_inline_cursor_has_what_the_adapter_reads(self) -> None:
        used = _attributes_used(
            [adapt.AsyncAdapt_dbapi_cursor, adapt.AsyncAdapt_dbapi_ss_cursor], "_cursor"
        )
        assert {"execute", "fetchall", "description"} <= used  # still scanned
        missing = {name for name in used - self.NOT_NEEDED if not hasattr(InlineCursor, name)}
        assert missing == set()

    def test_isolation_level_goes_through_tx_and_conn(self) -> None:
        """How the adapter sets the level; sqlite_inline answers exactly these two."""
        setter = inspect.getsource(aiosqlite_dialect.AsyncAdapt_aiosqlite_connection)
        assert "self._connection._tx.put_nowait((future, function))" in setter
        assert "partial(set_iso, self._connection._conn, value)" in setter
