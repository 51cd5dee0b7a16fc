"""argon2id password hashing, run off the event loop so a login never stalls other requests."""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

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
_HASHING = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="argon2")


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


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_HASHING, _hasher().hash, password)


def _verify(stored_hash: str | None, password: str) -> bool:
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
