"""Encryption of TOTP secrets at rest: AES-256-GCM under a key derived from the server key."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from nestauth.config import Settings
from nestauth.services.keys import TOTP_SECRET, Keyring

NONCE_BYTES = 12
VERSION = b"\x01"


class SecretUnreadable(InvalidTag):
    """No configured key opens this ciphertext: a wrong or dropped server key (or tampering)."""


class SecretBox:
    """Seals short secrets under the current key and opens them under the current or a
    previous one; the associated data binds a ciphertext to its row."""

    def __init__(
        self, server_key: str, purpose: bytes = TOTP_SECRET, previous: Sequence[str] = ()
    ) -> None:
        keyring = Keyring(server_key, tuple(previous))
        self._aeads = [AESGCM(key) for key in keyring.derived(purpose)]

    @staticmethod
    @lru_cache(maxsize=8)
    def of(keyring: Keyring) -> SecretBox:
        return SecretBox(keyring.current, previous=keyring.previous)

    @classmethod
    def for_settings(cls, settings: Settings) -> SecretBox:
        return cls.of(Keyring.of(settings))

    def seal(self, plaintext: str, associated_data: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._aeads[0].encrypt(nonce, plaintext.encode(), associated_data)
        return VERSION + nonce + ciphertext

    def open(self, sealed: bytes, associated_data: bytes) -> str:
        return self.open_with_index(sealed, associated_data)[0]

    def open_with_index(self, sealed: bytes, associated_data: bytes) -> tuple[str, int]:
        """The plaintext and which key opened it (0: the current key)."""
        if sealed[:1] != VERSION:
            raise ValueError("unknown secret format")
        nonce, ciphertext = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        for index, aead in enumerate(self._aeads):
            try:
                return aead.decrypt(nonce, ciphertext, associated_data).decode(), index
            except InvalidTag:
                continue
        raise SecretUnreadable("no configured server key opens this secret")
