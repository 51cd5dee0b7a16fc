"""`/metrics`: Prometheus text for operators holding the metrics token, nothing for others."""

from __future__ import annotations

import uuid
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from nestauth.app import create_app
from tests.support import Api, assert_error, make_settings, sign_in

TOKEN = "metrics-token-for-tests-" + "m" * 16


def scrape(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = api.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class TestAccess:
    def test_not_found_while_no_token_is_configured(self, api: Api) -> None:
        response = api.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert_error(response, 404, "NOT_FOUND")

    def test_without_the_token_401(self, api: Api) -> None:
        api.configure(metrics_token=TOKEN)
        response = api.client.get("/metrics")
        assert_error(response, 401, "NO_AUTH_PROVIDED")
        assert response.headers["www-authenticate"] == "Bearer"

    def test_a_wrong_token_401(self, api: Api) -> None:
        api.configure(metrics_token=TOKEN)
        response = api.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"})
        assert_error(response, 401, "INVALID_CREDENTIALS")

    def test_an_admin_session_is_not_the_metrics_token(self, api: Api) -> None:
        api.configure(metrics_token=TOKEN)
        response = api.client.get("/metrics", headers=sign_in(api).headers)
        assert_error(response, 401, "INVALID_CREDENTIALS")


class TestContent:
    def test_requests_and_latency_are_labelled_by_operation_id_never_the_path(
        self, api: Api
    ) -> None:
        api.configure(metrics_token=TOKEN)
        admin = sign_in(api, "viewer")
        missing = uuid.uuid4()
        before = scrape(api)

        api.client.get(f"/auth/admin/api/users/{missing}", headers=admin.headers)
        api.client.get(f"/auth/no-such-path/{missing}")
        after = scrape(api)

        labels = {"operation": "get_user", "method": "GET", "status": "404"}
        name = "nestauth_http_requests_total"
        assert value(after, name, **labels) == value(before, name, **labels) + 1
        unrouted = {"operation": "unrouted", "method": "GET", "status": "404"}
        assert value(after, name, **unrouted) == value(before, name, **unrouted) + 1
        count = "nestauth_http_request_duration_seconds_count"
        assert (
            value(after, count, operation="get_user")
            == value(before, count, operation="get_user") + 1
        )
        assert not any(str(missing) in str(key) for key in after)

    def test_rate_limit_rejections_are_counted(self, api: Api) -> None:
        api.configure(metrics_token=TOKEN, admin_login_max_failures=1)
        email = api.create_admin()
        body = {"email": email, "password": "wrong password!"}
        before = value(scrape(api), "nestauth_rate_limited_total", operation="log_in_admin")

        assert api.client.post("/auth/admin/login", json=body).status_code == 401
        assert_error(api.client.post("/auth/admin/login", json=body), 429, "RATE_LIMITED")

        after = value(scrape(api), "nestauth_rate_limited_total", operation="log_in_admin")
        assert after == before + 1

    def test_gauges_of_the_pool_and_the_hash_queue_are_shown(self, api: Api) -> None:
        api.configure(metrics_token=TOKEN)
        samples = scrape(api)
        assert value(samples, "nestauth_db_pool_checked_out") >= 0
        assert ("nestauth_password_hash_queue_depth", ()) in samples


def test_database_unavailable_answers_are_counted() -> None:
    """A database that refuses connections: health answers 503, and the metric counts it."""
    url = "postgresql://nestauth@127.0.0.1:1/unreachable"
    settings = make_settings(url, metrics_token=TOKEN, db_connect_timeout_seconds=1)
    app = create_app(settings)
    with app.test_client() as client:
        assert_error(client.get("/auth/health"), 503, "SERVICE_UNAVAILABLE")
        response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert 'nestauth_db_unavailable_total{operation="get_health"} 1.0' in response.text
