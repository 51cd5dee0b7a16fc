"""The ApiError family, the framework's codes and the error envelope.

Every non-2xx body is {statusCode, error, message, code} (+ optional details), whether the
failure is ours, Connexion's (validation, security, media type), Starlette's (routing) or an
unexpected exception; nestauth.error_handlers maps each of them to it.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError


class ApiError(Exception):
    """A failure with a stable code; services raise these, never HTTP responses."""

    status_code = 500
    code = "INTERNAL_ERROR"
    message = "Internal server error"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details
        self.headers = headers or {}


class InternalError(ApiError):
    status_code, code, message = 500, "INTERNAL_ERROR", "Internal server error"


class ValidationFailed(ApiError):
    status_code, code, message = 400, "VALIDATION_FAILED", "Validation failed"


class SessionInvalid(ApiError):
    status_code, code, message = 401, "SESSION_INVALID", "Invalid admin session"


class SessionExpired(ApiError):
    status_code, code, message = 401, "SESSION_EXPIRED", "Admin session has expired"


class InvalidCredentials(ApiError):
    status_code, code, message = 401, "INVALID_CREDENTIALS", "Invalid credentials"


class MfaTokenInvalid(ApiError):
    status_code, code, message = 401, "MFA_TOKEN_INVALID", "Invalid or expired MFA token"


class MfaCodeInvalid(ApiError):
    status_code, code, message = 401, "MFA_CODE_INVALID", "Invalid MFA code"


class AdminSecretInvalid(ApiError):
    status_code, code, message = 401, "ADMIN_SECRET_INVALID", "Invalid admin secret key"


class CsrfTokenInvalid(ApiError):
    status_code, code, message = 403, "CSRF_TOKEN_INVALID", "Invalid or missing CSRF token"


class CsrfOriginRejected(ApiError):
    status_code, code, message = 403, "CSRF_ORIGIN_REJECTED", "Request origin is not allowed"


class MissingPermissions(ApiError):
    status_code = 403
    code = "MISSING_REQUIRED_PERMISSIONS"
    message = "Your role does not allow this action"


class ReauthenticationRequired(ApiError):
    status_code = 403
    code = "REAUTHENTICATION_REQUIRED"
    message = "Sign in again, or confirm with a current TOTP code (without MFA: your password)"


class AdminBootstrapClosed(ApiError):
    status_code = 403
    code = "ADMIN_BOOTSTRAP_CLOSED"
    message = "An admin already exists; bootstrap signup is closed"


class PageTooDeep(ApiError):
    status_code, code = 400, "PAGE_TOO_DEEP"
    message = "page × limit exceeds the depth reachable by page number; follow meta.nextCursor"


class CursorInvalid(ApiError):
    status_code, code = 400, "CURSOR_INVALID"
    message = "The cursor was not issued by this list"


class UserNotFound(ApiError):
    status_code, code, message = 404, "USER_NOT_FOUND", "User not found"


class TotpDeviceNotFound(ApiError):
    status_code, code, message = 404, "TOTP_DEVICE_NOT_FOUND", "TOTP device not found"


class SessionNotFound(ApiError):
    status_code, code, message = 404, "SESSION_NOT_FOUND", "Session not found"


class AdminNotFound(ApiError):
    status_code, code, message = 404, "ADMIN_NOT_FOUND", "Admin not found"


class LastOwner(ApiError):
    status_code = 409
    code = "LAST_OWNER"
    message = "The last owner can be neither removed nor demoted"


class DeviceLimitReached(ApiError):
    status_code, code, message = 409, "DEVICE_LIMIT_REACHED", "Too many TOTP devices"


class EmailAlreadyExists(ApiError):
    status_code, code, message = 409, "EMAIL_ALREADY_EXISTS", "Email is already registered"


class PayloadTooLarge(ApiError):
    status_code, code, message = 413, "PAYLOAD_TOO_LARGE", "Request body is too large"


class RequestTimeout(ApiError):
    """Sent by the HTTP layer (`nestauth.http_limits`): the request's headers came too slowly."""

    status_code, code, message = 408, "REQUEST_TIMEOUT", "Request headers not received in time"


class HeaderFieldsTooLarge(ApiError):
    """Sent by the HTTP layer (`nestauth.http_limits`): request line and headers over the cap."""

    status_code = 431
    code = "HEADER_FIELDS_TOO_LARGE"
    message = "Request line and headers are too large"


class RateLimited(ApiError):
    status_code, code, message = 429, "RATE_LIMITED", "Too many attempts; try again later"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(
            message, details={"retryAfter": retry_after}, headers={"Retry-After": str(retry_after)}
        )


class SecretKeyMismatch(ApiError):
    """A stored secret that none of the configured server keys opens. Not the client's fault
    and not transient (a retry cannot help until an operator restores the key): 500, with a
    code of its own so that it is told apart from a bug."""

    status_code, code = 500, "SECRET_KEY_MISMATCH"
    message = "A stored secret cannot be decrypted with the server's keys; contact the operator"


class RequestRejected(ApiError):
    """A 4xx the framework raised with a status nestauth has no specific code for."""

    status_code, code, message = 400, "REQUEST_REJECTED", "Request rejected"


class ServiceUnavailable(ApiError):
    status_code, code, message = 503, "SERVICE_UNAVAILABLE", "Service temporarily unavailable"


class HashingBusy(ApiError):
    """Every place in the password-hashing queue is taken: the server is overloaded, not the
    client at fault (unlike RATE_LIMITED). Answered at once; retrying shortly is safe."""

    status_code, code = 503, "HASHING_BUSY"
    message = "The server is busy checking passwords; retry shortly"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            details={"retryAfter": retry_after}, headers={"Retry-After": str(retry_after)}
        )


class StatementTimeout(ApiError):
    """A database statement ran past NESTAUTH_DB_STATEMENT_TIMEOUT_MS and was stopped; the
    request's transaction was rolled back."""

    status_code, code = 503, "STATEMENT_TIMEOUT"
    message = "The database took too long and the request was stopped; nothing was changed"


# Codes for failures Connexion and Starlette raise themselves, by status.
FRAMEWORK_CODES = {
    400: "VALIDATION_FAILED",
    401: "NO_AUTH_PROVIDED",
    403: "MISSING_REQUIRED_PERMISSIONS",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def framework_code(status: int) -> str:
    """The code for a status raised by Connexion or Starlette: a server fault stays a
    server fault (500 INTERNAL_ERROR, 501 too), never the client's VALIDATION_FAILED."""
    if status in FRAMEWORK_CODES:
        return FRAMEWORK_CODES[status]
    return InternalError.code if status >= 500 else RequestRejected.code


def envelope(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "statusCode": status,
        "error": HTTPStatus(status).phrase,
        "message": message,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def envelope_bytes(status: int, code: str, message: str) -> bytes:
    return json.dumps(envelope(status, code, message)).encode()


def is_database_unavailable(exc: BaseException) -> bool:
    """A lost or unreachable database, as opposed to a bug in a query."""
    if isinstance(exc, (OperationalError, PoolTimeoutError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)
