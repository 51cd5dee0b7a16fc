"""The one mapping from any failure to the error envelope: our ApiError family, Connexion's
problems, Starlette's HTTP exceptions and anything unexpected."""

from __future__ import annotations

import json
import logging
import re
from http import HTTPStatus
from typing import Any

from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from starlette.exceptions import HTTPException

from nestauth import db
from nestauth.errors import (
    ApiError,
    InternalError,
    ServiceUnavailable,
    StatementTimeout,
    envelope,
    framework_code,
    is_database_unavailable,
)
from nestauth.observability import request_id_of

log = logging.getLogger("nestauth.errors")


def _server_fault(
    request: ConnexionRequest, status: int, what: str, **log_kw: Any
) -> ConnexionResponse:
    """Logged once, with the id the client is told; no detail in the body."""
    # The request log has already put a sane id in the headers; the same rule, one place.
    rid = request_id_of(request.scope)
    log.error("%s (status %s), request id %s", what, status, rid, **log_kw)
    return _response(status, InternalError.code, f"Internal server error (request id {rid})")


def _response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> ConnexionResponse:
    return ConnexionResponse(
        status_code=status,
        mimetype="application/json",
        content_type="application/json",
        body=json.dumps(envelope(status, code, message, details)),
        headers=headers or {},
    )


def _first_line(text: object) -> str:
    """jsonschema messages span lines and dump whole schemas; the first line says it all."""
    lines = str(text or "").strip().splitlines()
    return lines[0] if lines else ""


# The handlers are coroutines: Connexion runs a plain function in a worker thread, a thread
# hop for every error response.
async def handle_api_error(_request: ConnexionRequest, exc: ApiError) -> ConnexionResponse:
    return _response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)


async def handle_problem(request: ConnexionRequest, exc: ProblemException) -> ConnexionResponse:
    status = _status(exc.status)
    if status >= 500:
        # The detail may quote a response body (NonConformingResponseBody): not logged.
        return _server_fault(request, status, type(exc).__name__)
    message = _first_line(exc.detail) or _first_line(exc.title) or HTTPStatus(status).phrase
    return _response(status, framework_code(status), message, headers=exc.headers)


_ERROR_STATUSES = frozenset(status.value for status in HTTPStatus if status.value >= 400)


def _status(status: object) -> int:
    """A status the envelope can carry (it needs a reason phrase); else a server fault."""
    return status if isinstance(status, int) and status in _ERROR_STATUSES else 500


class KnownRoutes:
    """The spec's path templates, matched against the raw (still percent-encoded) path.

    Connexion's router cannot match a path whose parameter holds an encoded newline or
    slash, and answers 404; but such a request names a real operation with a malformed
    parameter, which is a 400.
    """

    def __init__(self, templates: dict[str, set[str]]) -> None:
        self._routes = [
            (re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(t)) + "$", re.S), m)
            for t, m in templates.items()
        ]

    def matches(self, method: str, raw_path: str) -> bool:
        return method.lower() in self.allowed_methods(raw_path)

    def allowed_methods(self, raw_path: str) -> set[str]:
        for pattern, methods in self._routes:
            if pattern.match(raw_path):
                return methods | ({"head"} if "get" in methods else set())
        return set()


def http_exception_handler(known_routes: KnownRoutes) -> Any:
    async def handle_http_exception(
        request: ConnexionRequest, exc: HTTPException
    ) -> ConnexionResponse:
        status = _status(exc.status_code)
        if status >= 500:
            return _server_fault(request, status, type(exc).__name__)
        headers = dict(exc.headers or {})  # keeps Allow on 405
        message = _first_line(exc.detail) or HTTPStatus(status).phrase
        raw_path = request.scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0]
        if status == 404 and known_routes.matches(request.method, raw_path):
            return _response(400, "VALIDATION_FAILED", "Invalid path parameter")
        allowed = known_routes.allowed_methods(raw_path) if status == 405 else set()
        if allowed:
            # Connexion routes each operation apart, so its Allow names one operation only.
            headers["Allow"] = ", ".join(sorted(m.upper() for m in allowed))
        return _response(status, framework_code(status), message, headers=headers)

    return handle_http_exception


async def handle_unexpected(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    if db.is_statement_timeout(exc):
        db.STATEMENT_TIMEOUTS.record()
        log.warning("statement stopped at its deadline: %s", type(exc).__name__)
        return _response(503, StatementTimeout.code, StatementTimeout.message)
    if is_database_unavailable(exc):
        log.warning("database unavailable: %s", type(exc).__name__)
        return _response(503, ServiceUnavailable.code, ServiceUnavailable.message)
    return _server_fault(request, 500, "unhandled error", exc_info=exc)


def register_error_handlers(app: Any, known_routes: KnownRoutes) -> None:
    # Connexion pre-registers its own ProblemException handler: ours must name it explicitly.
    app.add_error_handler(ApiError, handle_api_error)
    app.add_error_handler(ProblemException, handle_problem)
    app.add_error_handler(HTTPException, http_exception_handler(known_routes))
    app.add_error_handler(Exception, handle_unexpected)
