"""Email addresses: one account per address however it is typed."""

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.errors import EmailAlreadyExists


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def flush_unique_email(session: AsyncSession) -> None:
    """Flushes pending rows; a taken (normalised) email is a 409, the rest of the
    transaction unharmed (a savepoint takes the failed insert back)."""
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise EmailAlreadyExists() from None
