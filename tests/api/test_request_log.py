"""One JSON access-log line per request, with a request id the client gets back; no secrets."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import PASSWORD, Api, live_nestauth, make_settings, sign_in

FIELDS = {"requestId", "operationId", "method", "status", "durationMs", "clientIp"}


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "nestauth.access"]


@pytest.fixture
def access_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="nestauth.access")
    return caplog


class TestRequestId:
    def test_a_sane_request_id_is_honoured_and_logged(
        self, api: Api, access_log: pytest.LogCaptureFixture
    ) -> None:
        response = api.client.get("/auth/health", headers={"X-Request-ID": "abc.DEF_123-x"})

        assert response.headers["x-request-id"] == "abc.DEF_123-x"
        [line] = access_lines(access_log)
        assert set(line) == FIELDS
        assert line["requestId"] == "abc.DEF_123-x"
        assert line["operationId"] == "get_health"
        assert (line["method"], line["status"]) == ("GET", 200)
        assert line["durationMs"] >= 0 and line["clientIp"]

    @pytest.mark.parametrize("given", ["a" * 65, "has space", "semi;colon", "new\\nline", ""])
    def test_an_unfit_request_id_is_replaced(
        self, api: Api, access_log: pytest.LogCaptureFixture, given: str
    ) -> None:
        response = api.client.get("/auth/health", headers={"X-Request-ID": given})

        returned = response.headers["x-request-id"]
        assert returned != given and re.fullmatch(r"[0-9a-f]{32}", returned)
        assert [line["requestId"] for line in access_lines(access_log)] == [returned]

    def test_every_answer_carries_one_errors_included(self, api: Api) -> None:
        answers = [
            api.client.get("/auth/health"),
            api.client.get("/auth/nowhere"),  # 404 from routing
            api.client.post("/auth/login", json={"email": 1}),  # 400 from validation
            api.client.post("/auth/login", content=b"x" * 70_000),  # 413 before anything
            api.client.get("/metrics"),  # served outside Connexion
        ]
        assert [r.status_code for r in answers] == [200, 404, 400, 413, 404]
        ids = [r.headers["x-request-id"] for r in answers]
        assert len(set(ids)) == len(ids)


class TestNoSecrets:
    def test_passwords_tokens_cookies_and_query_values_stay_out(
        self, api: Api, access_log: pytest.LogCaptureFixture
    ) -> None:
        signed = api.sign_up()
        admin = sign_in(api)
        api.client.post("/auth/refresh-token", json={"refreshToken": signed["refreshToken"]})
        api.client.get("/auth/admin/api/users?search=secret-query-value", headers=admin.headers)
        api.client.get("/auth/user", headers={"Authorization": f"Bearer {signed['accessToken']}"})
        api.client.get("/auth/admin/me", headers={"Cookie": "nest_auth_admin=cookie-secret-value"})

        text = "\n".join(r.getMessage() for r in access_log.records)
        lines = access_lines(access_log)
        assert {line["operationId"] for line in lines} >= {
            "sign_up_user", "refresh_tokens", "list_users", "get_current_user",
            "get_current_admin",
        }  # fmt: skip
        assert all(set(line) == FIELDS for line in lines)
        secrets = (PASSWORD, signed["refreshToken"], signed["accessToken"], admin.token)
        for secret in (*secrets, "secret-query-value", "cookie-secret-value"):
            assert secret not in text
        assert signed["user"]["email"] not in text


def test_a_live_server_logs_json_lines_with_the_operation_and_no_uvicorn_access_log(
    database_url: str, tmp_path: Path
) -> None:
    """Under uvicorn the router works on a copy of the scope (see NOTES): the operation must
    still reach the log line. uvicorn's own access log is off."""
    env = {
        "NESTAUTH_DATABASE_URL": database_url,
        "NESTAUTH_SECRET_KEY": make_settings(database_url).secret_key,
    }
    with live_nestauth(tmp_path, env) as base:
        answered = httpx.get(f"{base}/auth/health", headers={"X-Request-ID": "live-check-1"})
    assert answered.headers["x-request-id"] == "live-check-1"

    log = (tmp_path / "server.log").read_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    mine = [line for line in lines if line["requestId"] == "live-check-1"]
    assert [(m["operationId"], m["status"]) for m in mine] == [("get_health", 200)]
    assert '"GET /auth/health HTTP/1.1" 200' not in log
