"""Every failure, ours or the framework's, answers with the error envelope (contract §1, §6)."""

from __future__ import annotations

from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc

from nestauth.app import create_app
from nestauth.services import admin_sessions
from tests.support import Api, make_settings

LOGIN = "/auth/admin/login"
JSON = {"content-type": "application/json"}
DEFAULT_MAX_BODY = 65536
ENVELOPE_KEYS = {"statusCode", "error", "message", "code"}


def assert_envelope(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert ENVELOPE_KEYS <= set(body) <= ENVELOPE_KEYS | {"details"}, body
    assert body["statusCode"] == status
    assert body["error"] == HTTPStatus(status).phrase
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert "\n" not in body["message"]
    return body


def chunks(total: int, size: int = 8192) -> Iterator[bytes]:
    """A body httpx sends chunked, with no Content-Length."""
    while total > 0:
        yield b" " * min(size, total)
        total -= size


class TestUnknownRoute:
    def test_404_unknown_path(self, api: Api) -> None:
        assert_envelope(api.client.get("/auth/no-such-route"), 404, "NOT_FOUND")

    def test_404_outside_auth_prefix(self, api: Api) -> None:
        assert_envelope(api.client.post("/health", json={}), 404, "NOT_FOUND")


class TestWrongMethod:
    def test_405_post_on_health_keeps_allow_header(self, api: Api) -> None:
        response = api.client.post("/auth/health")
        assert_envelope(response, 405, "METHOD_NOT_ALLOWED")
        assert "GET" in response.headers["allow"]

    def test_405_put_on_admin_me_keeps_allow_header(self, api: Api) -> None:
        response = api.client.put("/auth/admin/me", json={})
        assert_envelope(response, 405, "METHOD_NOT_ALLOWED")
        assert "GET" in response.headers["allow"]
        assert "PUT" not in response.headers["allow"]


class TestWrongContentType:
    def test_415_text_plain_login(self, api: Api) -> None:
        response = api.client.post(
            LOGIN, content=b"email=a@example.com", headers={"content-type": "text/plain"}
        )
        assert_envelope(response, 415, "UNSUPPORTED_MEDIA_TYPE")

    def test_415_form_encoded_login(self, api: Api) -> None:
        response = api.client.post(LOGIN, data={"email": "a@example.com", "password": "x"})
        assert_envelope(response, 415, "UNSUPPORTED_MEDIA_TYPE")


class TestMalformedBody:
    def test_400_malformed_json(self, api: Api) -> None:
        response = api.client.post(LOGIN, content=b'{"email": ', headers=JSON)
        assert_envelope(response, 400, "VALIDATION_FAILED")

    def test_400_non_utf8_body_is_not_a_500(self, api: Api) -> None:
        response = api.client.post(LOGIN, content=b"\xff\xfe", headers=JSON)
        assert_envelope(response, 400, "VALIDATION_FAILED")

    @pytest.mark.parametrize("field", ["email", "password"])
    def test_400_nul_character_in_string(self, api: Api, field: str) -> None:
        body = {"email": "admin@example.com", "password": "correct horse"}
        body[field] = "a\u0000b" if field == "password" else "a\u0000b@example.com"
        assert_envelope(api.client.post(LOGIN, json=body), 400, "VALIDATION_FAILED")

    def test_400_nul_character_in_bootstrap_name(self, api: Api) -> None:
        body = {"email": "a@example.com", "password": "correct horse", "name": "x\u0000"}
        response = api.client.post("/auth/admin/signup", json=body)
        assert_envelope(response, 400, "VALIDATION_FAILED")


class TestBodySizeLimit:
    def test_413_declared_length_over_limit(self, api: Api) -> None:
        response = api.client.post(LOGIN, content=b" " * (DEFAULT_MAX_BODY + 1), headers=JSON)
        assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")

    def test_400_not_413_at_exactly_the_limit(self, api: Api) -> None:
        response = api.client.post(LOGIN, content=b" " * DEFAULT_MAX_BODY, headers=JSON)
        assert_envelope(response, 400, "VALIDATION_FAILED")

    def test_413_body_longer_than_its_declared_length(self, api: Api) -> None:
        headers = {**JSON, "content-length": "10"}
        response = api.client.post(LOGIN, content=b" " * (DEFAULT_MAX_BODY + 1), headers=headers)
        assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")

    def test_413_chunked_body_over_limit(self, api: Api) -> None:
        response = api.client.post(LOGIN, content=chunks(DEFAULT_MAX_BODY + 8192), headers=JSON)
        assert "content-length" not in response.request.headers
        assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")

    def test_401_chunked_body_within_limit_is_read(self, api: Api) -> None:
        def body() -> Iterator[bytes]:
            yield b'{"email": "nobody@example.com",'
            yield b' "password": "wrong password"}'

        response = api.client.post(LOGIN, content=body(), headers=JSON)
        assert_envelope(response, 401, "INVALID_CREDENTIALS")


class TestValidationMessages:
    @pytest.mark.parametrize(
        "body",
        [
            {"email": "admin@example.com"},
            {"email": 5, "password": "x"},
            {"email": "not an email", "password": "x"},
            {"email": "admin@example.com", "password": "x", "extra": {"nested": [1, 2]}},
            {"email": "admin@example.com", "password": "x" * 129},
            [],
        ],
    )
    def test_400_body_message_is_one_line_without_schema(self, api: Api, body: Any) -> None:
        message = assert_envelope(api.client.post(LOGIN, json=body), 400, "VALIDATION_FAILED")[
            "message"
        ]
        for schema_dump in ("Failed validating", "On instance", "'properties'", "{'type'"):
            assert schema_dump not in message

    def test_400_query_message_is_one_line_naming_parameter(self, api: Api) -> None:
        user = api.create_user()
        url = f"/auth/admin/api/users/{user.id}/totp-devices/{user.devices[0]}?revokeSessions=x"
        response = api.client.delete(url, headers=api.bearer())
        message = assert_envelope(response, 400, "VALIDATION_FAILED")["message"]
        assert "'revokeSessions'" in message
        assert "Failed validating" not in message


class TestUnexpectedFailures:
    def test_500_runtime_error_hides_its_text(self, api: Api, monkeypatch) -> None:
        async def broken(*_args: Any, **_kwargs: Any) -> None:
            raise RuntimeError("secret internals")

        monkeypatch.setattr(admin_sessions, "authenticate", broken)
        response = api.client.get("/auth/admin/me", headers={"Authorization": "Bearer token"})
        assert_envelope(response, 500, "INTERNAL_ERROR")
        for leak in ("secret internals", "RuntimeError", "Traceback", "authenticate"):
            assert leak not in response.text

    def test_503_operational_error(self, api: Api, monkeypatch) -> None:
        async def database_down(*_args: Any, **_kwargs: Any) -> None:
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("down"))

        monkeypatch.setattr(admin_sessions, "authenticate", database_down)
        response = api.client.get("/auth/admin/me", headers={"Authorization": "Bearer token"})
        assert_envelope(response, 503, "SERVICE_UNAVAILABLE")
        assert "SELECT" not in response.text

    def test_503_health_when_database_cannot_be_opened(self, tmp_path: Path) -> None:
        unreachable = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'nestauth.db'}"
        with create_app(make_settings(unreachable)).test_client() as client:
            assert_envelope(client.get("/auth/health"), 503, "SERVICE_UNAVAILABLE")


class TestHealth:
    def test_200_database_answers(self, api: Api) -> None:
        response = api.client.get("/auth/health")
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "ok", "database": "ok", "writes": "ok"}
