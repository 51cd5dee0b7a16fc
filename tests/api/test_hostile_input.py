"""A corpus of hostile requests: each is a 4xx envelope with a documented code, names no
value it was sent, and leaves every table as it was (issue 12)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from nestauth import errors
from tests.support import Api, sign_in

JSON = "application/json"
MARKER = "HOSTILEVALUE"  # in every value a message could echo
UNSUPPORTED = "UNSUPPORTED_MEDIA_TYPE"
DOCUMENTED_CODES = {
    cls.code for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.ApiError)
} | set(errors.FRAMEWORK_CODES.values())  # fmt: skip


@dataclass(frozen=True)
class Body:
    """A raw body, its Content-Type (None: no header), and what it must get."""

    raw: bytes
    content_type: str | None = JSON
    status: int = 400
    code: str = "VALIDATION_FAILED"


def _json_text(value: str) -> bytes:
    return b'{"email": "' + value.encode() + b'", "password": "' + MARKER.encode() + b'"}'


LOGIN_LIKE = _json_text("someone@example.com")
BODIES: dict[str, Body] = {
    "nested 900 deep": Body(b'{"email": ' + b"[" * 900 + b"]" * 900 + b"}"),
    "nested 30000 deep": Body(b"[" * 30000 + b"]" * 30000),
    "nested 33 deep": Body(b'{"metadata": ' + b'{"a": ' * 33 + b"1" + b"}" * 34),
    "escaped quotes, unterminated": Body(b'["' + b'\\"' * 30000),
    "no Content-Type": Body(LOGIN_LIKE, None, 415, UNSUPPORTED),
    "text/plain": Body(LOGIN_LIKE, "text/plain", 415, UNSUPPORTED),
    "form encoded": Body(b"a=b", "application/x-www-form-urlencoded", 415, UNSUPPORTED),
    "unknown charset": Body(LOGIN_LIKE, "application/json;charset=no-such", 415, UNSUPPORTED),
    "utf-16 declared, utf-8 sent": Body(
        LOGIN_LIKE, "application/json;charset=utf-16", 415, UNSUPPORTED
    ),
    "latin-1 declared, hiding a surrogate": Body(
        b'{"email": "a@example.com", "password": "\xed\xa0\x80abcdefghijk"}',
        "application/json;charset=latin-1",
        415,
        UNSUPPORTED,
    ),
    "NaN": Body(b'{"email": "a@example.com", "password": NaN}'),
    "Infinity": Body(b'{"email": "a@example.com", "metadata": {"a": Infinity}}'),
    "-Infinity": Body(b'{"email": "a@example.com", "metadata": {"a": -Infinity}}'),
    "1e400": Body(b'{"email": "a@example.com", "metadata": {"a": 1e400}}'),
    "5000-digit integer": Body(
        b'{"email": "a@example.com", "metadata": {"a": ' + b"9" * 5000 + b"}}"
    ),
    "integer beyond 2**53": Body(
        b'{"email": "a@example.com", "metadata": {"a": 9007199254740993}}'
    ),
    "invalid UTF-8": Body(b'{"email": "\xff\xfe@example.com", "password": "x"}'),
    "raw NUL byte": Body(b'{"email": "a\x00@example.com", "password": "x"}'),
    "escaped NUL": Body(b'{"email": "a@example.com", "metadata": {"a": "x\\u0000"}}'),
    "lone surrogate": Body(b'{"email": "a@example.com", "metadata": {"a": "\\ud800"}}'),
    "lone surrogate in a key": Body(b'{"email": "a@example.com", "metadata": {"\\udfff": 1}}'),
    "byte order mark": Body(b"\xef\xbb\xbf" + LOGIN_LIKE),
    "duplicate keys": Body(
        b'{"email": "a@example.com", "email": "b@example.com", "password": "x"}'
    ),
    "array for an object": Body(b"[" + LOGIN_LIKE + b"]"),
    "top-level string": Body(b'"' + MARKER.encode() + b'"'),
    "top-level number": Body(b"12345678901234"),
    "top-level null": Body(b"null"),
    "top-level true": Body(b"true"),
    "empty": Body(b""),
    "whitespace only": Body(b"   \n "),
    "truncated": Body(b'{"email": "a@example.com", "pass'),
    "10k-element array": Body(b'{"email": [' + b",".join([b"0"] * 10_000) + b"]}"),
    "object for a string": Body(b'{"email": {"$ne": null}, "password": {"$gt": ""}}'),
    "1000-character email": Body(_json_text(MARKER + "a" * 1000 + "@example.com")),
    "full-width email": Body(_json_text("\uff41dmin@example.com")),
    "email with CRLF": Body(_json_text("a@example.com\\r\\nBcc: x@example.com")),
    # A plain unknown name is named (a typo's fix); anything else is data, not echoed.
    "unknown field, not a plain name": Body(
        b'{"email": "a@b.co", "' + MARKER.encode() + b' <x>": 1}'
    ),
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # {id} is a user's id
    admin: bool = False
    # A body around an oversized value, and the message that must name it instead.
    oversized: tuple[str, str] = ("password", "password: longer than 128 characters")
    extra: dict[str, Any] = field(default_factory=dict)


OPERATIONS = {
    "login": Operation("POST", "/auth/login", extra={"email": "a@example.com"}),
    "signup": Operation("POST", "/auth/signup", extra={"email": "a@example.com"}),
    "admin login": Operation("POST", "/auth/admin/login", extra={"email": "a@example.com"}),
    "refresh": Operation("POST", "/auth/refresh-token",
                         oversized=("refreshToken", "refreshToken: longer than 200 characters")),
    "mfa verify": Operation("POST", "/auth/mfa/verify", extra={"otp": "123456", "method": "totp"},
                            oversized=("mfaToken", "mfaToken: longer than 200 characters")),
    "admin users create": Operation("POST", "/auth/admin/api/users", admin=True,
                                    extra={"email": "a@example.com"}),
    "admin users patch": Operation("PATCH", "/auth/admin/api/users/{id}", admin=True),
}  # fmt: skip


def assert_refused(response: Any, status: int, code: str, label: str) -> None:
    assert response.status_code == status, (label, response.status_code, response.text[:300])
    body = response.json()
    assert {"statusCode", "error", "message", "code"} <= set(body), (label, body)
    assert (body["statusCode"], body["code"]) == (status, code), (label, body)
    assert code in DOCUMENTED_CODES, (label, code)
    message = body["message"]
    assert len(message) <= 120 and "\n" not in message, (label, message)
    assert MARKER not in response.text and "aaaaaaaaaa" not in message, (label, message)


def _prepare(api: Api, operation: Operation) -> tuple[str, dict[str, str]]:
    headers = sign_in(api, "owner").headers if operation.admin else {}
    return operation.path.replace("{id}", api.create_user().id), headers


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_hostile_bodies_are_refused_and_change_nothing(api: Api, name: str) -> None:
    operation = OPERATIONS[name]
    path, auth = _prepare(api, operation)
    before = api.snapshot()
    for label, body in BODIES.items():
        headers = {**auth, **({"content-type": body.content_type} if body.content_type else {})}
        response = api.client.request(operation.method, path, content=body.raw, headers=headers)
        assert_refused(response, body.status, body.code, label)
        assert api.snapshot() == before, label


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_an_oversized_value_is_named_not_echoed(api: Api, name: str) -> None:
    operation = OPERATIONS[name]
    path, auth = _prepare(api, operation)
    before = api.snapshot()
    field_name, message = operation.oversized
    body = {**operation.extra, field_name: MARKER + "a" * 200}
    response = api.client.request(operation.method, path, json=body, headers=auth)
    assert_refused(response, 400, "VALIDATION_FAILED", name)
    assert response.json()["message"] == message
    assert api.snapshot() == before


# --- the seed operation: path, query and headers --------------------------------------------


@dataclass(frozen=True)
class Hostile:
    """A request on DELETE /auth/admin/api/users/{id}/totp-devices/{deviceId}."""

    id: str = "{id}"
    device: str = "{device}"
    query: str = ""
    headers: dict[str, Any] = field(default_factory=dict)
    status: int = 400
    code: str = "VALIDATION_FAILED"
    auth: str = "bearer"  # or "cookie" (a valid session cookie) or "none"


LONG = MARKER + "a" * 50_000
SEED_CASES: dict[str, Hostile] = {
    "id not a uuid": Hostile(id=MARKER),
    "id 10 KB": Hostile(id=LONG[:10_000]),
    "id with encoded NUL": Hostile(id="{id}%00"),
    "id with encoded newline": Hostile(id="{id}%0A"),
    "id with encoded slash": Hostile(id="{id}%2F.."),
    "id in braces": Hostile(id="%7B{id}%7D"),
    "device id with invalid UTF-8": Hostile(device="%FF%FE"),
    "device id SQL": Hostile(device="1'%20OR%20'1'='1"),
    "revokeSessions not a boolean": Hostile(query=f"revokeSessions={MARKER}"),
    "revokeSessions 10 KB": Hostile(query="revokeSessions=" + LONG[:10_000]),
    "revokeSessions as an array": Hostile(query="revokeSessions[]=true"),
    "unknown parameter, long name": Hostile(query=LONG[:8_000] + "=1"),
    "unknown parameter": Hostile(query=f"{MARKER}%0D%0A=1"),
    "2000 parameters": Hostile(query="&".join(f"p{i}=1" for i in range(2000))),
    "50 KB Authorization": Hostile(headers={"Authorization": "Bearer " + LONG}, auth="none",
                                   status=401, code="SESSION_INVALID"),
    "Authorization not text": Hostile(headers={"Authorization": b"Bearer \xff\xfe\x00"},
                                      auth="none", status=401, code="SESSION_INVALID"),
    "Authorization with CRLF": Hostile(headers={"Authorization": "Bearer x\r\nX-Role: owner"},
                                       auth="none", status=401, code="SESSION_INVALID"),
    "50 KB session cookie": Hostile(headers={"Cookie": "nest_auth_admin=" + LONG}, auth="none",
                                    status=401, code="SESSION_INVALID"),
    "50 KB X-CSRF-Token": Hostile(headers={"X-CSRF-Token": LONG}, auth="cookie", status=403,
                                  code="CSRF_TOKEN_INVALID"),
    "X-CSRF-Token with NUL": Hostile(headers={"X-CSRF-Token": b"x\x00y"}, auth="cookie",
                                     status=403, code="CSRF_TOKEN_INVALID"),
    "Content-Length not a number": Hostile(headers={"Content-Length": "12abc"}),
    "Content-Length of 30 digits": Hostile(headers={"Content-Length": "9" * 30}, status=413,
                                           code="PAYLOAD_TOO_LARGE"),
}  # fmt: skip


def test_hostile_requests_on_the_seed_operation_change_nothing(api: Api) -> None:
    user = api.create_user(verified_devices=2, sessions=1)
    bearer = sign_in(api, "admin").headers
    session = api.login(api.create_admin("admin"))
    api.client.cookies.clear()
    cookie = {
        "Cookie": f"nest_auth_admin={session['token']}; nest_auth_csrf={session['csrfToken']}"
    }
    before = api.snapshot()
    for label, case in SEED_CASES.items():
        user_id = case.id.replace("{id}", user.id)
        path = f"/auth/admin/api/users/{user_id}/totp-devices/"
        path += case.device.replace("{device}", user.devices[0])
        auth = {"bearer": bearer, "cookie": cookie, "none": {}}[case.auth]
        url = f"{path}?{case.query}" if case.query else path
        response = api.client.delete(url, headers={**auth, **case.headers})
        assert_refused(response, case.status, case.code, label)
        after = api.snapshot()
        if case.status == 403:  # a refused action is audited, by design; with no value sent
            events = set(after.pop("audit_events")) - set(before.pop("audit_events"))
            assert len(events) == 1 and "admin.access_denied" in str(events), label
            assert MARKER not in str(events), label
            assert after == before, label
            before = api.snapshot()
        else:
            assert after == before, label


LIST_CASES = {
    "page 1e400": "page=1e400",
    "page of 30 digits": "page=" + "9" * 30,
    "page of 5000 digits": "page=" + "9" * 5000,
    "limit negative": "limit=-1",
    "limit NaN": "limit=NaN",
    "search 10 KB": "search=" + LONG[:10_000],
    "search with NUL": f"search={MARKER}%00",
    "status unknown": f"status={MARKER}",
    "audit userId not a uuid": f"userId={MARKER}",
}


@pytest.mark.parametrize("label", list(LIST_CASES))
def test_hostile_list_queries_are_a_400(api: Api, label: str) -> None:
    admin = sign_in(api, "viewer")
    path = "/auth/admin/api/audit-logs" if "audit" in label else "/auth/admin/api/users"
    response = api.client.get(f"{path}?{LIST_CASES[label]}", headers=admin.headers)
    assert_refused(response, 400, "VALIDATION_FAILED", label)
