"""Two owners acting on each other at once: one wins, the other gets LAST_OWNER (issue 12).

The last-owner rule locks owner rows; locked target-first, two owners demoting each other
deadlocked on PostgreSQL (3 of 10 trials answered 503). Enough trials run here to catch it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.models import Admin, AdminSession, utcnow
from nestauth.services import tokens
from tests.support import Api, bearer

TRIALS = 20
URL = "/auth/admin/admins"


def two_owners(api: Api) -> list[tuple[str, str]]:
    """Only two owners, each with a live session: (admin id, bearer token) for each. Rows
    are written directly: a password hash per trial would make the trials slow."""
    now = utcnow()
    pairs = [(uuid.uuid4(), tokens.new_token()) for _ in range(2)]

    async def create(session: AsyncSession) -> None:
        await session.execute(sa.delete(Admin))
        for admin_id, token in pairs:
            session.add(Admin(id=admin_id, email=f"{admin_id.hex[:12]}@example.com",
                              role="owner", password_hash="unused"))  # fmt: skip
            await session.flush()
            session.add(AdminSession(
                admin_id=admin_id, token_hash=tokens.digest(token),
                csrf_token_hash=tokens.digest(tokens.new_token()), created_at=now,
                last_seen_at=now, expires_at=now.replace(year=now.year + 1),
            ))  # fmt: skip

    api.db(create)
    return [(str(admin_id), token) for admin_id, token in pairs]


def each_on_the_other(api: Api, send: Callable[[str, str], int]) -> list[int]:
    """Two fresh owners; each sends `send(its token, the other's id)`, both at once (a
    barrier, one thread each). The sorted statuses."""
    owners = two_owners(api)
    barrier = threading.Barrier(2)

    def go(index: int) -> int:
        barrier.wait()
        return send(owners[index][1], owners[1 - index][0])

    with ThreadPoolExecutor(max_workers=2) as pool:
        return sorted(pool.map(go, range(2)))


def owners_left(api: Api) -> int:
    return api.count(Admin, Admin.role == "owner")


def assert_one_winner(api: Api, outcomes: list[list[int]]) -> None:
    """One 200 each time; the other is 409 LAST_OWNER, or 401 when the winner's change had
    already ended its session before it was authenticated (always so on SQLite, where
    whole transactions take turns). On PostgreSQL the requests must really have overlapped."""
    assert all(o in ([200, 401], [200, 409]) for o in outcomes), outcomes
    if api.runtime.engine.dialect.name == "postgresql":
        assert [200, 409] in outcomes, outcomes


class TestOwnersActingOnEachOther:
    def test_demoting_each_other_gives_one_200_and_one_409(self, api: Api) -> None:
        def demote(token: str, other_id: str) -> int:
            body = {"role": "admin"}
            return api.client.patch(
                f"{URL}/{other_id}", json=body, headers=bearer(token)
            ).status_code

        outcomes = []
        for _ in range(TRIALS):
            outcomes.append(each_on_the_other(api, demote))
            assert owners_left(api) == 1
        assert_one_winner(api, outcomes)

    def test_deleting_each_other_gives_one_200_and_one_409(self, api: Api) -> None:
        def remove(token: str, other_id: str) -> int:
            return api.client.delete(f"{URL}/{other_id}", headers=bearer(token)).status_code

        outcomes = []
        for _ in range(TRIALS):
            outcomes.append(each_on_the_other(api, remove))
            assert owners_left(api) == 1 and api.count(Admin) == 1
        assert_one_winner(api, outcomes)
