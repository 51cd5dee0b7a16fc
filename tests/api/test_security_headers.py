"""Browser hardening headers on every response, and redirects that never name a host."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from tests.support import PASSWORD, Api, assert_error, bearer


def assert_hardened(response: Any) -> None:
    """The headers every response carries, whatever its status or content."""
    headers = response.headers
    assert headers["cache-control"] == "no-store", response.request.url
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["referrer-policy"] in {"no-referrer", "same-origin"}


def csp_directives(response: Any) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    return {d.split()[0]: d.partition(" ")[2] for d in (p.strip() for p in policy.split(";"))}


class TestEveryResponse:
    def test_json_response(self, api: Api) -> None:
        response = api.client.get("/auth/health")
        assert response.status_code == 200
        assert_hardened(response)
        assert response.headers["referrer-policy"] == "no-referrer"
        assert csp_directives(response)["default-src"] == "'none'"
        assert response.headers["pragma"] == "no-cache"

    def test_responses_carrying_tokens_and_secrets(self, api: Api) -> None:
        login = api.client.post(
            "/auth/admin/login", json={"email": api.create_admin(), "password": PASSWORD}
        )
        signup = api.client.post(
            "/auth/signup", json={"email": "u@example.com", "password": PASSWORD}
        )
        token = signup.json()["accessToken"]
        setup = api.client.post("/auth/mfa/setup-totp", json={}, headers=bearer(token))
        codes = api.client.post("/auth/mfa/generate-recovery-code", headers=bearer(token))
        refreshed = api.refresh(signup.json()["refreshToken"])
        for response, secret in [
            (login, "token"), (signup, "accessToken"), (setup, "secret"), (codes, "codes"),
            (refreshed, "refreshToken"),
        ]:  # fmt: skip
            assert response.status_code < 300 and secret in response.json(), response.text
            assert_hardened(response)

    @pytest.mark.parametrize(
        ("method", "path", "status", "code"),
        [
            ("get", "/auth/admin/me", 401, "NO_AUTH_PROVIDED"),
            ("get", "/auth/nowhere", 404, "NOT_FOUND"),
            ("put", "/auth/health", 405, "METHOD_NOT_ALLOWED"),
            ("get", "/auth/admin/api/users/not-a-uuid", 401, "NO_AUTH_PROVIDED"),
        ],
    )
    def test_error_envelopes(self, api: Api, method: str, path: str, status: int, code: str):
        response = api.client.request(method, path)
        assert_error(response, status, code)
        assert_hardened(response)

    def test_413_sent_by_the_body_limit(self, api: Api) -> None:
        declared = api.client.post(
            "/auth/login", content=b"{" + b" " * 70_000 + b"}",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        assert_error(declared, 413, "PAYLOAD_TOO_LARGE")
        assert_hardened(declared)
        streamed = api.client.post(
            "/auth/login", content=iter([b"{", b" " * 70_000, b"}"]),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        assert_error(streamed, 413, "PAYLOAD_TOO_LARGE")
        assert_hardened(streamed)

    def test_503_sent_when_the_commit_fails(self, api: Api) -> None:
        """The database goes away between the handler and the commit (a fault raised by
        SQLAlchemy's own commit hook): the transaction middleware answers by itself."""

        def lost(_conn: Any) -> None:
            raise sa.exc.OperationalError("COMMIT", {}, ConnectionError("link lost"))

        engine = api.runtime.engine.sync_engine  # the writer: a sign-up commits there
        event.listen(engine, "commit", lost)
        try:
            response = api.client.post(
                "/auth/signup", json={"email": "lost@example.com", "password": "a long password"}
            )
        finally:
            event.remove(engine, "commit", lost)
        assert_error(response, 503, "SERVICE_UNAVAILABLE")
        assert_hardened(response)


class TestStrictTransportSecurity:
    def test_sent_with_secure_cookies(self, api: Api) -> None:
        api.configure(cookie_secure=True)
        hsts = api.client.get("/auth/health").headers["strict-transport-security"]
        assert int(hsts.removeprefix("max-age=")) >= 180 * 24 * 3600

    def test_not_sent_for_plain_http_development(self, api: Api) -> None:
        api.configure(cookie_secure=False)
        assert "strict-transport-security" not in api.client.get("/auth/health").headers


class TestRedirects:
    @pytest.mark.parametrize(
        ("path", "location"),
        [
            ("/auth/docs", "/auth/docs/"),
            ("/auth/health/", "/auth/health"),
            ("/auth/admin/me/", "/auth/admin/me"),
            ("/auth/admin/api/users/?page=2", "/auth/admin/api/users?page=2"),
        ],
    )
    @pytest.mark.parametrize(
        "host", ["evil.example", "evil.example:8443", "testserver//evil.example", "[::1]:99"]
    )
    def test_relative_whatever_the_host_header(
        self, api: Api, path: str, location: str, host: str
    ) -> None:
        response = api.client.get(path, headers={"Host": host}, follow_redirects=False)
        assert response.status_code in {301, 302, 307, 308}
        assert response.headers["location"] == location
        assert_hardened(response)


class _Page(HTMLParser):
    """The scripts, stylesheets and inline script bodies of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self._in_script = True
            if found.get("src"):
                self.scripts.append(str(found["src"]))
        elif tag == "link" and found.get("rel") == "stylesheet":
            self.styles.append(str(found["href"]))
        elif tag == "style":
            self.inline.append("<style>")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(data)


class TestSwaggerUi:
    def test_page_has_no_inline_script_and_a_strict_policy(self, api: Api) -> None:
        response = api.client.get("/auth/docs/")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert_hardened(response)
        policy = csp_directives(response)
        assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
        assert policy["default-src"] == "'none'"
        assert "unsafe" not in response.headers["content-security-policy"]
        page = _Page()
        page.feed(response.text)
        assert page.inline == []
        assert len(page.scripts) >= 2 and page.styles

    def test_its_scripts_styles_and_spec_load(self, api: Api) -> None:
        page = _Page()
        page.feed(api.client.get("/auth/docs/").text)
        for src in page.scripts:
            script = api.client.get(f"/auth/docs/{src.removeprefix('./')}")
            assert script.status_code == 200, src
            assert "javascript" in script.headers["content-type"]
            assert_hardened(script)
        for href in page.styles:
            style = api.client.get(f"/auth/docs/{href.removeprefix('./')}")
            assert style.status_code == 200 and "text/css" in style.headers["content-type"]
        initializer = api.client.get(f"/auth/docs/{page.scripts[-1].removeprefix('./')}").text
        assert "SwaggerUIBundle(" in initializer and "specUrl" in initializer
        spec = api.client.get("/openapi.json")
        assert spec.status_code == 200 and spec.json()["openapi"] == "3.0.3"

    def test_page_names_the_spec_it_loads(self, api: Api) -> None:
        assert 'data-spec-url="/openapi.json"' in api.client.get("/auth/docs/").text
