"""Multi-factor authentication: MFA tokens, TOTP enrolment and login, recovery codes."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

import segno
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.config import Settings
from nestauth.errors import DeviceLimitReached, MfaCodeInvalid, MfaTokenInvalid, TotpDeviceNotFound
from nestauth.models import MfaChallenge, RecoveryCode, TotpDevice, User, core_table
from nestauth.services import keys, ratelimit, tokens, totp, totp_devices, users
from nestauth.services.secrets import SecretBox

log = logging.getLogger("nestauth.mfa")
MAX_DEVICES = 10
RECOVERY_CODES = 10
RECOVERY_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud safely
# Built once: a statement's construction and cache key cost more than its execution.
_CHALLENGE_BY_TOKEN = select(MfaChallenge).where(MfaChallenge.token_hash == bindparam("token_hash"))
_CHALLENGES = core_table(MfaChallenge)
_CLOSE_CHALLENGE = (  # Core: the closed challenge object is not used again
    update(_CHALLENGES)
    .where(_CHALLENGES.c.id == bindparam("challenge_id"), _CHALLENGES.c.used_at.is_(None))
    .values(used_at=bindparam("now"))
)


@dataclass(frozen=True)
class Enrolment:
    device: TotpDevice
    secret: str
    otpauth_url: str
    qr_code: str


def mfa_policy(settings: Settings) -> ratelimit.Policy:
    """Per (user, address) strict, per address, per user only slowed (ratelimit.Policy)."""
    return ratelimit.Policy.of(
        "mfa", settings.mfa_max_failures, timedelta(seconds=settings.mfa_lock_seconds), settings
    )


async def issue_challenge(
    session: AsyncSession, settings: Settings, user: User, purpose: str, now: datetime
) -> str:
    token = tokens.new_token()
    session.add(
        MfaChallenge(
            user_id=user.id,
            token_hash=tokens.digest(token),
            purpose=purpose,
            created_at=now,
            expires_at=now + timedelta(seconds=settings.mfa_token_seconds),
        )
    )
    await session.flush()
    return token


async def open_challenge(
    session: AsyncSession, token: str, purpose: str, now: datetime
) -> tuple[MfaChallenge, User]:
    challenge = await session.scalar(_CHALLENGE_BY_TOKEN, {"token_hash": tokens.digest(token)})
    if (
        challenge is None
        or challenge.purpose != purpose
        or challenge.used_at is not None
        or challenge.expires_at <= now
    ):
        raise MfaTokenInvalid()
    user = await users.get_user(session, challenge.user_id)
    if not user.is_active:
        raise MfaTokenInvalid()
    return challenge, user


async def close_challenge(session: AsyncSession, challenge: MfaChallenge, now: datetime) -> None:
    """Single use, even for two requests racing with two valid codes."""
    result = await session.execute(_CLOSE_CHALLENGE, {"challenge_id": challenge.id, "now": now})
    if not result.rowcount:  # type: ignore[attr-defined]
        raise MfaTokenInvalid()


async def check_totp(
    session: AsyncSession,
    settings: Settings,
    box: SecretBox,
    user: User,
    otp: str,
    now: datetime,
    address: str | None = None,
) -> TotpDevice:
    """A fresh code of one of the user's verified devices; rate limits first (Warehouse's
    order), then replay: a code already accepted for that device is refused and logged."""
    policy = mfa_policy(settings)
    await ratelimit.ensure_allowed_from(session, policy, str(user.id), address, now)
    # Every secret opened before any code is compared: one that no key opens fails the step
    # before it can become an uncounted guess against the others.
    opened = [
        (device, totp_devices.device_secret(box, device))
        for device in await users.list_devices(session, user.id)
        if device.verified
    ]
    for device, secret in opened:
        step = totp.matching_step(secret, otp, now)
        if step is None:
            continue
        if await totp.claim_step(session, device.id, step, now):
            await ratelimit.clear_pair(session, policy, str(user.id), address)
            return device
        log.warning("TOTP replay rejected for device %s", device.id)
    await _fail(session, policy, user, address, now)


async def _fail(
    session: AsyncSession,
    policy: ratelimit.Policy,
    user: User,
    address: str | None,
    now: datetime,
) -> NoReturn:
    await ratelimit.record_failure_from(session, policy, str(user.id), address, now)
    await session.commit()  # the failure counts although the request fails
    raise MfaCodeInvalid()


def _setup_cutoff(settings: Settings, now: datetime) -> datetime:
    """Enrolments started at or before this moment have expired."""
    return now - timedelta(seconds=settings.totp_setup_seconds)


async def start_enrolment(
    session: AsyncSession,
    settings: Settings,
    box: SecretBox,
    user: User,
    device_name: str | None,
    now: datetime,
) -> Enrolment:
    """Only verified devices count to the cap: ten abandoned setups once locked a user
    holding a setup-only token out of enrolling at all."""
    cutoff = _setup_cutoff(settings, now)
    devices = await totp_devices.make_room_for_enrolment(session, user.id, cutoff)
    if sum(d.verified for d in devices) >= MAX_DEVICES:
        raise DeviceLimitReached()
    name = device_name or f"Authenticator {len(devices) + 1}"
    device, secret = await totp_devices.add_device(
        session, box, user_id=user.id, device_name=name, created_at=now
    )
    url = totp.otpauth_url(secret, user.email, settings.totp_issuer)
    qr = segno.make(url, error="m").svg_data_uri(scale=4)
    return Enrolment(device, secret, url, qr)


async def finish_enrolment(
    session: AsyncSession,
    settings: Settings,
    box: SecretBox,
    user: User,
    *,
    secret: str,
    otp: str,
    now: datetime,
    address: str | None = None,
) -> TotpDevice:
    """Verifies a pending (unexpired) device; the code that verified it counts as used."""
    await totp_devices.lock_devices(session, user.id)
    devices = await users.list_devices(session, user.id)
    cutoff = _setup_cutoff(settings, now)
    pending = [d for d in devices if totp_devices.is_pending(d, cutoff)]
    device = next(
        (d for d in pending if hmac.compare_digest(totp_devices.device_secret(box, d), secret)),
        None,
    )
    if device is None:
        raise TotpDeviceNotFound("No pending TOTP setup with this secret (or it expired)")
    if sum(d.verified for d in devices) >= MAX_DEVICES:
        raise DeviceLimitReached()
    policy = mfa_policy(settings)
    await ratelimit.ensure_allowed_from(session, policy, str(user.id), address, now)
    step = totp.matching_step(secret, otp, now)
    if step is None or not await totp.claim_step(session, device.id, step, now):
        await _fail(session, policy, user, address, now)
    await ratelimit.clear_pair(session, policy, str(user.id), address)
    device.verified = True
    user.is_mfa_enabled = True
    return device


def _recovery_digests(settings: Settings, code: str) -> list[str]:
    """Codes carry 50 random bits, so a keyed hash suffices (no slow hash needed). The first
    digest (current key) is the one stored; the others still match codes stored earlier:
    under a previous server key, or under the HMAC key of releases before keys.derive_key
    (sha256 of label + server key), which the stored codes of those releases need."""
    normalized = code.strip().upper().replace("-", "").replace(" ", "").encode()
    keyring = keys.Keyring.of(settings)
    legacy = [hashlib.sha256(keys.RECOVERY_CODE + k.encode()).digest() for k in keyring.all]
    return [
        hmac.new(key, normalized, hashlib.sha256).hexdigest()
        for key in (*keyring.derived(keys.RECOVERY_CODE), *legacy)
    ]


async def new_recovery_codes(
    session: AsyncSession, settings: Settings, user: User, now: datetime
) -> list[str]:
    """Replaces the user's codes; the plain codes are shown this once and never stored."""
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        session.add(
            RecoveryCode(
                user_id=user.id, code_hash=_recovery_digests(settings, raw)[0], created_at=now
            )
        )
    await session.flush()
    return codes


async def use_recovery_code(
    session: AsyncSession,
    settings: Settings,
    user: User,
    code: str,
    now: datetime,
    address: str | None = None,
) -> None:
    policy = mfa_policy(settings)
    await ratelimit.ensure_allowed_from(session, policy, str(user.id), address, now)
    result = await session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash.in_(_recovery_digests(settings, code)),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=now)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        await _fail(session, policy, user, address, now)
    await ratelimit.clear_pair(session, policy, str(user.id), address)


async def has_unused_recovery_codes(session: AsyncSession, user_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(RecoveryCode.id)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
        .limit(1)
    )
    return found is not None
