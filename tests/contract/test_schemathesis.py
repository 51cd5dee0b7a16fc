"""Every operation fuzzed against the spec, all checks on: in-process and live.

The operations are dealt into shards by a hash of their label, so that pytest-xdist can run
the shards on several cores (one lazy schema is a single test item); every operation falls in
exactly one shard, whatever operations the spec gains.
"""

from __future__ import annotations

import zlib
from typing import Any

import schemathesis

from tests.contract.conftest import CASES

SHARDS = 4


def _in_shard(index: int) -> Any:
    def matches(ctx: Any) -> bool:
        return zlib.crc32(ctx.operation.label.encode()) % SHARDS == index

    return matches


def _count(kind: str) -> None:
    CASES[kind] = CASES.get(kind, 0) + 1


def _conformance_tests(fixture: str, kind: str) -> list[Any]:
    tests = []
    for index in range(SHARDS):
        schema = schemathesis.pytest.from_fixture(fixture).include(_in_shard(index))

        @schema.parametrize()
        def conforms(case: Any) -> None:
            _count(kind)
            case.call_and_validate()

        tests.append(conforms)
    return tests


(
    test_in_process_conforms_shard_0,
    test_in_process_conforms_shard_1,
    test_in_process_conforms_shard_2,
    test_in_process_conforms_shard_3,
) = _conformance_tests("asgi_schema", "in-process")
(
    test_live_server_conforms_shard_0,
    test_live_server_conforms_shard_1,
    test_live_server_conforms_shard_2,
    test_live_server_conforms_shard_3,
) = _conformance_tests("live_schema", "live")


def test_every_operation_falls_in_exactly_one_shard(asgi_schema: Any) -> None:
    labels = [result.ok().label for result in asgi_schema.get_all_operations()]
    shards = [zlib.crc32(label.encode()) % SHARDS for label in labels]
    assert len(labels) == len(set(labels)) and all(0 <= s < SHARDS for s in shards)
    assert sorted(set(shards)) == list(range(SHARDS)), "a shard is empty: change SHARDS"
