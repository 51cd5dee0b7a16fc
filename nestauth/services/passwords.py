"""argon2id password hashing, run off the event loop so a login never stalls other requests."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from nestauth.config import Settings
from nestauth.errors import HashingBusy, RateLimited

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128  # bounds the hashing input (no long-password DoS)

# Production: the library's RFC 9106 low-memory profile (t=3, 64 MiB, p=4). "test": the same
# argon2id format at the smallest cost, so a suite that creates thousands of accounts does not
# spend minutes hashing. A hash made under "test" needs a rehash under the default profile, so
# the next login of such an account upgrades it (see credentials.check_password).
HASH_PROFILES = {
    "default": {},
    "test": {"time_cost": 1, "memory_cost": 64, "parallelism": 1},
}
DEFAULT_PROFILE = "default"

log = logging.getLogger("nestauth.passwords")
_profile = DEFAULT_PROFILE

# One hash per core at a time: more threads add no throughput, only memory (64 MiB each
# with the library's profile; measured: six at once took the server from 120 to 400 MB).
WORKERS = os.cpu_count() or 1
_HASHING = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="argon2")
# Set, except while a test holds hashes back (`paused`) to fill the queue deterministically.
_running = threading.Event()
_running.set()


class HashGate:
    """Admission to the hashing threads for requests from the network.

    At most WORKERS + queue_size checks are admitted at once (hashing or waiting for a
    thread); past that a request is refused at once (503 HASHING_BUSY) instead of waiting
    behind a backlog it cannot see the end of. At most per_client of them come from one
    address (429): a flood from one address cannot fill the queue. Admission comes before
    any database work, so a refused request costs neither a hash nor a write.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # admissions come from the loop, tests from threads
        self._admitted = 0
        self._by_client: dict[str, int] = {}

    @property
    def admitted(self) -> int:
        return self._admitted

    def in_flight(self, client: str) -> int:
        return self._by_client.get(client, 0)

    @contextmanager
    def admit(self, client: str | None, *, queue_size: int, per_client: int) -> Iterator[None]:
        key = client or "unknown"
        with self._lock:
            if self._by_client.get(key, 0) >= per_client:
                raise RateLimited(retry_after=1, message=CLIENT_BUSY_MESSAGE)
            if self._admitted >= WORKERS + queue_size:
                raise HashingBusy(retry_after=1)
            self._admitted += 1
            self._by_client[key] = self._by_client.get(key, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._admitted -= 1
                left = self._by_client[key] - 1
                if left:
                    self._by_client[key] = left
                else:
                    del self._by_client[key]  # the map holds only addresses in flight


CLIENT_BUSY_MESSAGE = "Too many password checks in progress from this address; retry shortly"
GATE = HashGate()


def admission(settings: Settings, client: str | None) -> AbstractContextManager[None]:
    """A place in the hashing queue for a request from `client`, for the block's duration."""
    return GATE.admit(
        client,
        queue_size=settings.hash_queue_size,
        per_client=settings.hash_max_in_flight_per_client,
    )


@contextmanager
def paused() -> Iterator[None]:
    """Test hook: hashes started inside the block wait in their threads until it ends, so a
    test can hold the queue full without timing anything."""
    _running.clear()
    try:
        yield
    finally:
        _running.set()


def use_profile(name: str) -> None:
    """Chooses the process's hashing cost (one per process: a setting, read at start-up)."""
    global _profile
    if name not in HASH_PROFILES:
        raise ValueError(f"unknown password hash profile {name!r}")
    if name != DEFAULT_PROFILE and _profile != name:
        log.warning("password hash profile %r: cheap hashes, for tests only", name)
    _profile = name


@lru_cache(maxsize=len(HASH_PROFILES))
def _hasher_for(profile: str) -> PasswordHasher:
    return PasswordHasher(**HASH_PROFILES[profile])  # type: ignore[arg-type]


def _hasher() -> PasswordHasher:
    return _hasher_for(_profile)


@lru_cache(maxsize=len(HASH_PROFILES))
def _dummy_hash(profile: str) -> str:
    return _hasher_for(profile).hash("nestauth-dummy-password")


def _hash(password: str) -> str:
    _running.wait()
    return _hasher().hash(password)


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_HASHING, _hash, password)


def _verify(stored_hash: str | None, password: str) -> bool:
    _running.wait()
    # An unknown account still pays for one verification: same answer, similar time.
    try:
        _hasher().verify(stored_hash or _dummy_hash(_profile), password)
    except (VerificationError, InvalidHashError):
        return False
    return stored_hash is not None


async def verify_password(stored_hash: str | None, password: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(
        _HASHING, _verify, stored_hash, password
    )


def needs_rehash(stored_hash: str) -> bool:
    return _hasher().check_needs_rehash(stored_hash)
