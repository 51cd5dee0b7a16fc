"""Opaque tokens: random on issue, stored only as a digest, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_BYTES = 32  # 256 bits: OWASP ASVS 3.2.2 asks for at least 64 bits of entropy


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def digest(token: str) -> str:
    """sha256 is enough for high-entropy random tokens (no dictionary to attack)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def same_digest(token: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(token), stored_digest)


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets of any length (ASVS 2.9.x)."""
    return hmac.compare_digest(digest(given), digest(expected))
