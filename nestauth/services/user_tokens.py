"""User tokens: short-lived signed access tokens, opaque rotating refresh tokens.

An access token names its session; every request checks that session is live (one primary
key lookup), so a revocation takes effect at once on every server process.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from nestauth.config import Settings
from nestauth.services import keys, tokens

ALGORITHM = "HS256"
AUDIENCE = "nestauth:user"


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID


def signing_key(server_key: str) -> bytes:
    """A key of its own, so that nothing else signed with the server key passes as a token."""
    return keys.derive_key(server_key, keys.ACCESS_TOKEN)


def verification_keys(settings: Settings) -> tuple[bytes, ...]:
    """The current signing key, then those of previous server keys: a token signed before a
    rotation stays valid until it expires."""
    return keys.Keyring.of(settings).derived(keys.ACCESS_TOKEN)


def issue_access_token(
    key: bytes, user_id: uuid.UUID, session_id: uuid.UUID, now: datetime, lifetime: int
) -> str:
    claims = {
        "sub": str(user_id),
        "sid": str(session_id),
        "aud": AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=lifetime)).timestamp()),
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def read_access_token(
    accepted_keys: Sequence[bytes], token: str, now: datetime
) -> AccessClaims | None:
    """The claims of a genuine, unexpired token; None for anything else (no detail leaks)."""
    for key in accepted_keys:
        try:
            return _read_with(key, token, now)
        except jwt.InvalidSignatureError:
            continue
    return None


def _read_with(key: bytes, token: str, now: datetime) -> AccessClaims | None:
    """None for an invalid or expired token; a signature that does not match this key is
    raised (InvalidSignatureError), for the caller to try the next key."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],  # never "none", never an algorithm the token chooses
            audience=AUDIENCE,
            # Expiry is judged below against the server's clock, not the library's.
            options={
                "require": ["sub", "sid", "exp", "aud"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
        if claims["exp"] <= now.timestamp():
            return None
        return AccessClaims(uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"]))
    except jwt.InvalidSignatureError:
        raise
    except (jwt.InvalidTokenError, ValueError, TypeError, KeyError):
        return None


def new_refresh_token(session_id: uuid.UUID) -> tuple[str, str]:
    """A refresh token names its session, so a replayed old one can be traced to it."""
    secret = tokens.new_token()
    return f"{session_id}.{secret}", tokens.digest(secret)


def split_refresh_token(token: str) -> tuple[uuid.UUID, str] | None:
    session_part, _, secret = token.partition(".")
    try:
        return uuid.UUID(session_part), secret
    except ValueError:
        return None
