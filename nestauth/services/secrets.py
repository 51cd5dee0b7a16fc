"""Encryption of TOTP secrets at rest: AES-256-GCM under a key derived from the server key."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12
VERSION = b"\x01"


class SecretBox:
    """Seals short secrets; the associated data binds a ciphertext to its row."""

    def __init__(self, server_key: str, purpose: bytes = b"nestauth totp secret v1") -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
            server_key.encode()
        )
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, associated_data: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return VERSION + nonce + self._aead.encrypt(nonce, plaintext.encode(), associated_data)

    def open(self, sealed: bytes, associated_data: bytes) -> str:
        if sealed[:1] != VERSION:
            raise ValueError("unknown secret format")
        nonce, ciphertext = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        return self._aead.decrypt(nonce, ciphertext, associated_data).decode()
