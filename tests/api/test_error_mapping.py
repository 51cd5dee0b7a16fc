"""Every failure, ours or the framework's, answers with the error envelope (contract §1, §6)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlalchemy.exc
from connexion import AsyncApp
from connexion.exceptions import ClientProblem

from nestauth.app import create_app
from nestauth.errors import KnownRoutes, register_error_handlers
from nestauth.models import User
from nestauth.services import admin_sessions
from tests.support import PASSWORD, Api, make_settings

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


# --- issue 12: hostile input and honest mapping ----------------------------------------------

SIGNUP = "/auth/signup"


class TestHostileBodies:
    def test_400_deep_nesting_without_recursion_error_or_big_log(self, api: Api, caplog) -> None:
        deep = b'{"email": ' + b"[" * 900 + b"]" * 900 + b"}"
        for path in (LOGIN, SIGNUP, "/auth/login"):
            caplog.clear()
            response = api.client.post(path, content=deep, headers=JSON)
            body = assert_envelope(response, 400, "VALIDATION_FAILED")
            assert body["message"] == "body: nested deeper than 32 levels"
            logged = "".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records)
            assert "RecursionError" not in logged and len(logged) < 2000

    @pytest.mark.parametrize("path", ["/auth/login", SIGNUP, LOGIN])
    def test_415_json_body_without_content_type(self, api: Api, path: str) -> None:
        # Connexion guessed JSON for validation, then handed the handler bytes: a 500.
        raw = b'{"email": "a@example.com", "password": "correct horse battery"}'
        response = api.client.post(path, content=raw)
        assert "content-type" not in response.request.headers
        assert_envelope(response, 415, "UNSUPPORTED_MEDIA_TYPE")
        assert api.count(User) == 0

    def test_400_content_length_not_a_number(self, api: Api) -> None:
        headers = {**JSON, "content-length": "12abc"}
        assert_envelope(api.client.post(LOGIN, content=b"{}", headers=headers), 400,
                        "VALIDATION_FAILED")  # fmt: skip

    @pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"9" * 5000])
    def test_400_metadata_number_json_cannot_carry(self, api: Api, number: bytes) -> None:
        headers = {**api.bearer(), **JSON}
        raw = b'{"email": "n@example.com", "metadata": {"a": ' + number + b"}}"
        response = api.client.post("/auth/admin/api/users", content=raw, headers=headers)
        assert_envelope(response, 400, "VALIDATION_FAILED")
        assert api.count(User) == 0

    def test_400_patch_infinity_leaves_metadata_as_it_was(self, api: Api) -> None:
        headers = {**api.bearer(), **JSON}
        user = api.create_user()
        raw = b'{"metadata": {"a": -Infinity}}'
        response = api.client.patch(
            f"/auth/admin/api/users/{user.id}", content=raw, headers=headers
        )
        assert_envelope(response, 400, "VALIDATION_FAILED")
        assert api.get_user(user.id).metadata_ in (None, {})

    def test_201_ordinary_numbers_still_pass(self, api: Api) -> None:
        metadata = {"score": 1.5, "big": 2**53 - 1, "small": -(2**53 - 1), "tiny": 1e-300}
        response = api.client.post(
            "/auth/admin/api/users",
            json={"email": "m@example.com", "metadata": metadata},
            headers=api.bearer(),
        )
        assert response.status_code == 201, response.text
        assert response.json()["user"]["metadata"] == metadata


class TestMessagesNameTheRuleNotTheValue:
    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({"email": "a@b.co", "password": "p" * 153}, "password: longer than 128 characters"),
            ({"email": "a@example.com"}, "password: required"),
            ({"email": ["a@b.co"], "password": PASSWORD}, "email: must be a string"),
            ({"email": "no address", "password": PASSWORD}, "email: not in the expected format"),
            ({"email": "a@b.co", "password": "x", "passwrd": 1}, "passwrd: not a known field"),
            ([{"email": "a@example.com"}], "body: must be an object"),
        ],
    )  # fmt: skip
    def test_400_body_message(self, api: Api, body: Any, message: str) -> None:
        response = api.client.post(SIGNUP, json=body)
        assert assert_envelope(response, 400, "VALIDATION_FAILED")["message"] == message

    def test_400_refresh_token_is_not_echoed(self, api: Api) -> None:
        token = "secret-refresh-" + "x" * 3000
        response = api.client.post("/auth/refresh-token", json={"refreshToken": token})
        body = assert_envelope(response, 400, "VALIDATION_FAILED")
        assert body["message"] == "refreshToken: longer than 200 characters"
        assert "secret-refresh" not in response.text

    def test_400_nested_metadata_path(self, api: Api) -> None:
        user = api.create_user()
        response = api.client.patch(
            f"/auth/admin/api/users/{user.id}",
            json={"metadata": {"team": "secret-" + "x" * 2000}},
            headers=api.bearer(),
        )
        body = assert_envelope(response, 400, "VALIDATION_FAILED")
        assert body["message"] == "metadata.team: longer than 1000 characters"
        assert "secret-" not in response.text

    def test_400_query_value_is_not_echoed(self, api: Api) -> None:
        user = api.create_user()
        url = f"/auth/admin/api/users/{user.id}/totp-devices/{user.devices[0]}"
        response = api.client.delete(url + "?revokeSessions=secretvalue", headers=api.bearer())
        body = assert_envelope(response, 400, "VALIDATION_FAILED")
        assert body["message"] == "query parameter 'revokeSessions': must be a boolean"

    def test_400_path_value_is_not_echoed(self, api: Api) -> None:
        response = api.client.get("/auth/admin/api/users/secretvalue", headers=api.bearer())
        body = assert_envelope(response, 400, "VALIDATION_FAILED")
        assert body["message"] == "path parameter 'id': not a valid uuid"


def respond_off_spec() -> dict[str, Any]:
    return {"unexpected": "secret-response-value"}


def raise_unknown_client_status() -> None:
    raise ClientProblem(status=422, detail="a status nestauth has no code for")


def mapping_app() -> Any:
    """A real Connexion app with nestauth's error handlers and three faults the main app
    cannot be made to produce: a non-conforming response (500), an operation that resolves
    to nothing (501), a 4xx status without a code of its own (422)."""
    ok = {"200": {"description": "ok", "content": {"application/json": {"schema": {
        "type": "object", "required": ["id"], "properties": {"id": {"type": "string"}},
        "additionalProperties": False}}}}}  # fmt: skip
    here = __name__
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "mapping", "version": "1"},
        "paths": {
            "/off-spec": {"get": {"operationId": f"{here}.respond_off_spec", "responses": ok}},
            "/unresolved": {"get": {"operationId": f"{here}.no_such_handler", "responses": ok}},
            "/unknown-4xx": {
                "get": {"operationId": f"{here}.raise_unknown_client_status", "responses": ok}
            },
        },
    }
    app = AsyncApp(__name__, resolver_error=501)
    app.add_api(spec, validate_responses=True)
    register_error_handlers(app, KnownRoutes({}))
    return app


class TestServerFaultsStayServerFaults:
    @pytest.mark.parametrize(("path", "status"), [("/off-spec", 500), ("/unresolved", 501)])
    def test_5xx_problem_keeps_its_status_and_is_logged_once(self, caplog, path, status) -> None:
        with mapping_app().test_client() as client:
            response = client.get(path, headers={"X-Request-ID": "trace-42"})
        body = assert_envelope(response, status, "INTERNAL_ERROR")
        assert body["message"] == "Internal server error (request id trace-42)"
        assert "secret-response-value" not in response.text
        logged = [r for r in caplog.records if "trace-42" in r.getMessage()]
        assert len(logged) == 1 and logged[0].levelname == "ERROR"
        assert "secret-response-value" not in caplog.text

    def test_unknown_4xx_keeps_its_status_with_a_documented_code(self) -> None:
        with mapping_app().test_client() as client:
            response = client.get("/unknown-4xx")
        assert_envelope(response, 422, "REQUEST_REJECTED")

    @pytest.mark.parametrize("given", ["a\r\nforged log line", "x" * 65, "id with spaces"])
    def test_unsafe_request_id_is_replaced(self, caplog, given: str) -> None:
        with mapping_app().test_client() as client:
            response = client.get("/off-spec", headers={"X-Request-ID": given})
        message = assert_envelope(response, 500, "INTERNAL_ERROR")["message"]
        assert re.fullmatch(r"Internal server error \(request id [0-9a-f]{32}\)", message)
        assert given not in caplog.text


class TestSqlParametersStayOutOfMessages:
    def test_statement_error_hides_its_parameters(self, api: Api) -> None:
        secret = "digest-" + "f" * 40

        async def failing() -> None:
            async with api.runtime.engine.connect() as conn:
                await conn.execute(
                    sa.text("SELECT * FROM no_such_table WHERE x = :d"), {"d": secret}
                )

        with pytest.raises(sqlalchemy.exc.DBAPIError) as caught:
            api.run(failing)
        assert secret not in str(caught.value)
