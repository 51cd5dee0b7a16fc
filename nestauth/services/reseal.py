"""`nestauth keys reseal`: every TOTP secret re-encrypted under the current server key, so
that previous keys can be dropped from NESTAUTH_PREVIOUS_SECRET_KEYS.

Safe while servers run: short batches, each its own transaction, and each row rewritten
only if it still holds the ciphertext that was read (a device removed or re-enrolled
meanwhile is left alone). Idempotent: a secret already under the current key is skipped.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from nestauth.models import TotpDevice, core_table
from nestauth.services import totp_devices
from nestauth.services.secrets import SecretBox, SecretUnreadable

BATCH_SIZE = 200
_DEVICES = core_table(TotpDevice)
_REWRITE = (
    update(_DEVICES)
    .where(_DEVICES.c.id == bindparam("device_id"), _DEVICES.c.secret_encrypted == bindparam("old"))
    .values(secret_encrypted=bindparam("new"))
)


@dataclass
class ResealReport:
    checked: int = 0
    resealed: int = 0
    unreadable: list[uuid.UUID] = field(default_factory=list)


async def reseal_totp_secrets(
    sessions: async_sessionmaker[AsyncSession], box: SecretBox, batch_size: int = BATCH_SIZE
) -> ResealReport:
    report = ResealReport()
    after: uuid.UUID | None = None
    while True:
        async with sessions() as session, session.begin():
            rows = await _next_batch(session, after, batch_size)
            for device_id, sealed in rows:
                await _reseal_one(session, box, device_id, sealed, report)
        if len(rows) < batch_size:
            return report
        after = rows[-1][0]


async def _next_batch(
    session: AsyncSession, after: uuid.UUID | None, limit: int
) -> list[tuple[uuid.UUID, bytes]]:
    query = select(_DEVICES.c.id, _DEVICES.c.secret_encrypted).order_by(_DEVICES.c.id)
    if after is not None:
        query = query.where(_DEVICES.c.id > after)
    return [(row.id, row.secret_encrypted) for row in await session.execute(query.limit(limit))]


async def _reseal_one(
    session: AsyncSession,
    box: SecretBox,
    device_id: uuid.UUID,
    sealed: bytes,
    report: ResealReport,
) -> None:
    report.checked += 1
    binding = totp_devices.secret_binding(device_id)
    try:
        secret, key_index = box.open_with_index(sealed, binding)
    except (SecretUnreadable, ValueError):  # ValueError: not a format this box wrote
        report.unreadable.append(device_id)
        return
    if key_index == 0:
        return  # already under the current key
    new = box.seal(secret, binding)
    result = await session.execute(_REWRITE, {"device_id": device_id, "old": sealed, "new": new})
    report.resealed += int(result.rowcount or 0)  # type: ignore[attr-defined]
