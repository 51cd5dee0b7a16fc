"""The CSRF Origin rule (contract §2): a cookie-authenticated change from a page of another
origin is refused, whatever NESTAUTH_CSRF_ALLOWED_ORIGINS holds; bearer requests are exempt."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from nestauth.models import AuditEvent, TotpDevice
from tests.support import Api, assert_error

URL = "/auth/admin/api/users/{}/totp-devices/{}"
OWN = "http://testserver"  # the test client's scheme and Host
FOREIGN = "https://evil.example"


def cookie_delete(api: Api, **headers: str):
    """A cookie-authenticated removal of a user's device, with its CSRF token and `headers`."""
    user = api.create_user(verified_devices=2)
    csrf = api.login(api.create_admin("admin"))["csrfToken"]
    response = api.client.delete(
        URL.format(user.id, user.devices[0]),
        headers={"X-CSRF-Token": csrf, **{k.replace("_", "-"): v for k, v in headers.items()}},
    )
    removed = api.count(TotpDevice, TotpDevice.id == uuid.UUID(user.devices[0]))
    return response, removed == 0


def refused(api: Api, **headers: str) -> None:
    response, removed = cookie_delete(api, **headers)
    assert_error(response, 403, "CSRF_ORIGIN_REJECTED")
    assert not removed
    denial = api.scalar(sa.select(AuditEvent).where(AuditEvent.action == "admin.access_denied"))
    assert denial.details["reason"] == "CSRF_ORIGIN_REJECTED"


def accepted(api: Api, **headers: str) -> None:
    response, removed = cookie_delete(api, **headers)
    assert response.status_code == 200, response.text
    assert removed


class TestOriginRule:
    def test_foreign_origin_refused_by_default(self, api: Api) -> None:
        assert api.runtime.settings.csrf_allowed_origins == ()
        refused(api, Origin=FOREIGN)

    def test_own_origin_accepted(self, api: Api) -> None:
        accepted(api, Origin=OWN)

    def test_own_origin_with_its_default_port_written_out(self, api: Api) -> None:
        accepted(api, Origin="HTTP://TestServer:80")

    def test_same_host_other_scheme_or_port_refused(self, api: Api) -> None:
        refused(api, Origin="https://testserver")
        api.reset()
        refused(api, Origin="http://testserver:8080")

    def test_opaque_origin_refused(self, api: Api) -> None:
        # A page with `Referrer-Policy: no-referrer` (or a sandboxed frame) sends `null`.
        refused(api, Origin="null")

    def test_referer_counts_when_origin_is_absent(self, api: Api) -> None:
        refused(api, Referer=f"{FOREIGN}/attack.html")
        api.reset()
        accepted(api, Referer=f"{OWN}/auth/docs/")

    def test_neither_origin_nor_referer_leaves_it_to_the_token(self, api: Api) -> None:
        accepted(api)  # a script with the cookie jar; the CSRF token is still required

    def test_allowed_origins_add_to_the_own_origin(self, api: Api) -> None:
        api.configure(csrf_allowed_origins=("https://console.example.com",))
        accepted(api, Origin="https://console.example.com")
        api.reset()
        api.configure(csrf_allowed_origins=("https://console.example.com",))
        accepted(api, Origin=OWN)
        api.reset()
        api.configure(csrf_allowed_origins=("https://console.example.com",))
        refused(api, Origin=FOREIGN)

    def test_origin_checked_before_the_token(self, api: Api) -> None:
        user = api.create_user()
        api.login(api.create_admin("admin"))
        response = api.client.delete(
            URL.format(user.id, user.devices[0]), headers={"Origin": FOREIGN}
        )
        assert_error(response, 403, "CSRF_ORIGIN_REJECTED")

    def test_bearer_requests_are_not_affected(self, api: Api) -> None:
        user = api.create_user(verified_devices=2)
        headers = {**api.bearer("admin"), "Origin": FOREIGN}
        api.client.cookies.clear()
        response = api.client.delete(URL.format(user.id, user.devices[0]), headers=headers)
        assert response.status_code == 200, response.text

    def test_reads_are_not_affected(self, api: Api) -> None:
        api.login(api.create_admin("viewer"))
        assert api.client.get("/auth/admin/me", headers={"Origin": FOREIGN}).status_code == 200


class TestBehindAProxy:
    """The browser's origin is https://auth.example.com; the proxy speaks http to us."""

    PROXIED = {"Host": "auth.example.com", "X_Forwarded_Proto": "https"}

    def test_own_origin_through_a_trusted_proxy(self, api: Api) -> None:
        api.configure(trusted_proxies=("127.0.0.1/32",))
        accepted(api, Origin="https://auth.example.com", **self.PROXIED)

    def test_an_untrusted_peer_cannot_claim_https(self, api: Api) -> None:
        refused(api, Origin="https://auth.example.com", **self.PROXIED)

    def test_an_untrusted_proxy_needs_the_origin_allowed(self, api: Api) -> None:
        api.configure(csrf_allowed_origins=("https://auth.example.com",))
        accepted(api, Origin="https://auth.example.com", **self.PROXIED)
