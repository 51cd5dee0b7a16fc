"""SQLAlchemy 2 typed mappings: no commits, no HTTP."""

from nestauth.models.admin import ADMIN_ROLES, Admin, AdminSession
from nestauth.models.audit import AuditEvent
from nestauth.models.base import Base, utcnow
from nestauth.models.ratelimit import RateLimitBucket
from nestauth.models.user import RecoveryCode, TotpDevice, User, UserSession

__all__ = [
    "ADMIN_ROLES",
    "Admin",
    "AdminSession",
    "AuditEvent",
    "Base",
    "RateLimitBucket",
    "RecoveryCode",
    "TotpDevice",
    "User",
    "UserSession",
    "utcnow",
]
