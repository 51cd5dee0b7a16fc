"""The one key-derivation function: every key nestauth uses comes from the server key by
HKDF-SHA256 with a label of its own, so no key serves two purposes.

Rotation: material is sealed and signed under the current key; it is opened and verified
under the current key, then each previous key (NESTAUTH_PREVIOUS_SECRET_KEYS).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from nestauth.config import ConfigError, Settings

# The labels are part of the stored data's format: changing one changes the derived key.
TOTP_SECRET = b"nestauth totp secret v1"
ACCESS_TOKEN = b"nestauth access v1"
RECOVERY_CODE = b"nestauth recovery v1"


@lru_cache(maxsize=64)
def derive_key(server_key: str, purpose: bytes) -> bytes:
    """32 bytes for one purpose; cached, as the per-request paths ask for it every time."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose)
    return hkdf.derive(server_key.encode())


@dataclass(frozen=True)
class Keyring:
    """The current server key first, then the previous ones still accepted."""

    current: str
    previous: tuple[str, ...] = ()

    @classmethod
    def of(cls, settings: Settings) -> Keyring:
        if not settings.secret_key:
            raise ConfigError(
                "NESTAUTH_SECRET_KEY",
                "required with any database but the embedded SQLite, the same on every process",
            )
        return cls(settings.secret_key, settings.previous_secret_keys)

    @property
    def all(self) -> tuple[str, ...]:
        return (self.current, *(k for k in self.previous if k != self.current))

    def derived(self, purpose: bytes) -> tuple[bytes, ...]:
        return tuple(derive_key(key, purpose) for key in self.all)
