"""SQLAlchemy 2 typed mappings: no commits, no HTTP."""

from nestauth.models.admin import ADMIN_ROLES, Admin, AdminSession
from nestauth.models.audit import AuditEvent
from nestauth.models.base import Base, core_table, utcnow
from nestauth.models.mfa import MfaChallenge
from nestauth.models.ratelimit import RateLimitBucket
from nestauth.models.user import RecoveryCode, TotpDevice, UsedRefreshToken, User, UserSession

__all__ = [
    "ADMIN_ROLES",
    "Admin",
    "AdminSession",
    "AuditEvent",
    "Base",
    "MfaChallenge",
    "RateLimitBucket",
    "RecoveryCode",
    "TotpDevice",
    "UsedRefreshToken",
    "User",
    "UserSession",
    "core_table",
    "utcnow",
]
