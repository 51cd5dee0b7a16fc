"""Every operation fuzzed against the spec, all checks on: in-process and live."""

from __future__ import annotations

from typing import Any

import schemathesis

from tests.contract.conftest import CASES

in_process = schemathesis.pytest.from_fixture("asgi_schema")
live = schemathesis.pytest.from_fixture("live_schema")


def _count(kind: str) -> None:
    CASES[kind] = CASES.get(kind, 0) + 1


@in_process.parametrize()
def test_in_process_conforms(case: Any) -> None:
    _count("in-process")
    case.call_and_validate()


@live.parametrize()
def test_live_server_conforms(case: Any) -> None:
    _count("live")
    case.call_and_validate()
