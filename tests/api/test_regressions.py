"""Findings of the schemathesis runs, each fixed at its root, each kept from coming back."""

from __future__ import annotations

from tests.support import Api, assert_error, bearer


class TestFuzzingFindings:
    def test_405_allow_lists_every_method_of_the_path(self, api: Api) -> None:
        # Connexion routes each operation apart; its Allow named only one of them.
        response = api.client.put("/auth/admin/api/users", headers=api.bearer())
        assert_error(response, 405, "METHOD_NOT_ALLOWED")
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert allowed == {"GET", "HEAD", "POST"}

    def test_optional_body_may_be_absent_but_not_untyped(self, api: Api) -> None:
        # Without a body Connexion validated "nothing" against the schema (400); without a
        # Content-Type it handed the handler raw bytes (500). A body without a Content-Type
        # is now a 415, as on every operation that takes a JSON body.
        token = api.sign_up()["accessToken"]
        assert api.client.post("/auth/mfa/setup-totp", headers=bearer(token)).status_code == 200
        response = api.client.post("/auth/mfa/setup-totp", content=b"{}", headers=bearer(token))
        assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")

    def test_400_for_an_address_a_browser_would_refuse(self, api: Api) -> None:
        # `format: email` passed anything with an "@"; the spec now states the rule.
        for email in ("ß£@w\u0088", "a@b", "x y@example.com", "user@exa mple.com"):
            response = api.client.post("/auth/admin/login", json={"email": email, "password": "x"})
            assert_error(response, 400, "VALIDATION_FAILED")

    def test_400_for_nul_in_a_schema_valid_looking_string(self, api: Api) -> None:
        # PostgreSQL text columns cannot hold NUL; it used to pass validation and fail there.
        body = {"email": "a@example.com", "password": "pass\u0000word"}
        assert_error(api.client.post("/auth/signup", json=body), 400, "VALIDATION_FAILED")
