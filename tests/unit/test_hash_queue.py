"""The hashing queue's admission rules, on a gate of their own (no server, no clock)."""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager

import pytest

from nestauth.errors import HashingBusy, RateLimited
from nestauth.services import passwords
from nestauth.services.passwords import WORKERS, HashGate

QUEUE = 3


def admit(
    gate: HashGate, client: str | None, per_client: int = 100
) -> AbstractContextManager[None]:
    return gate.admit(client, queue_size=QUEUE, per_client=per_client)


class TestQueueBound:
    def test_admits_one_per_worker_plus_the_queue_then_503_at_once(self) -> None:
        gate = HashGate()
        held = [admit(gate, f"10.0.0.{n}") for n in range(WORKERS + QUEUE)]
        for place in held:
            place.__enter__()
        assert gate.admitted == WORKERS + QUEUE
        with pytest.raises(HashingBusy) as refused, admit(gate, "10.0.1.1"):
            pass
        assert refused.value.status_code == 503
        assert refused.value.code == "HASHING_BUSY"
        assert refused.value.headers == {"Retry-After": "1"}
        assert refused.value.details == {"retryAfter": 1}
        assert gate.admitted == WORKERS + QUEUE  # the refused one took no place
        for place in held:
            place.__exit__(None, None, None)
        assert gate.admitted == 0

    def test_a_place_freed_is_taken_again(self) -> None:
        gate = HashGate()
        held = [admit(gate, f"10.0.0.{n}") for n in range(WORKERS + QUEUE)]
        for place in held:
            place.__enter__()
        held[0].__exit__(None, None, None)
        with admit(gate, "10.0.1.1"):
            assert gate.admitted == WORKERS + QUEUE
        for place in held[1:]:
            place.__exit__(None, None, None)

    def test_a_failure_inside_frees_the_place(self) -> None:
        gate = HashGate()
        with pytest.raises(ValueError), admit(gate, "10.0.0.1"):
            raise ValueError("the check failed")
        assert gate.admitted == 0
        assert gate.in_flight("10.0.0.1") == 0


class TestPerClientCap:
    def test_429_past_the_cap_for_that_address_only(self) -> None:
        gate = HashGate()
        with admit(gate, "10.0.0.1", per_client=2), admit(gate, "10.0.0.1", per_client=2):
            with pytest.raises(RateLimited) as refused, admit(gate, "10.0.0.1", per_client=2):
                pass
            assert refused.value.status_code == 429
            assert refused.value.code == "RATE_LIMITED"
            assert refused.value.headers == {"Retry-After": "1"}
            assert "in progress from this address" in refused.value.message
            with admit(gate, "10.0.0.2", per_client=2):
                assert gate.admitted == 3
        assert gate.in_flight("10.0.0.1") == 0

    def test_one_address_cannot_fill_the_queue(self) -> None:
        gate = HashGate()
        admitted, refused = 0, 0
        held = []
        for _ in range(WORKERS + QUEUE + 10):
            place = admit(gate, "10.0.0.1", per_client=2)
            try:
                place.__enter__()
            except RateLimited:
                refused += 1
            else:
                admitted += 1
                held.append(place)
        assert (admitted, refused) == (2, WORKERS + QUEUE + 8)
        with admit(gate, "10.0.0.2", per_client=2):  # another address still gets in
            pass
        for place in held:
            place.__exit__(None, None, None)

    def test_requests_without_an_address_share_one_cap(self) -> None:
        gate = HashGate()
        with admit(gate, None, per_client=1):
            with pytest.raises(RateLimited), admit(gate, None, per_client=1):
                pass


class TestPausedHook:
    def test_hashes_wait_until_released(self) -> None:
        async def scenario() -> tuple[bool, bool]:
            with passwords.paused():
                task = asyncio.ensure_future(passwords.hash_password("correct horse battery"))
                for _ in range(20):
                    await asyncio.sleep(0)
                waited = not task.done()  # its thread cannot finish while paused
            stored = await task
            return waited, await passwords.verify_password(stored, "correct horse battery")

        assert asyncio.run(scenario()) == (True, True)
