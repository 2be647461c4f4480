"""Logins, logouts and failed logins go into the audit trail, and a login starts the idle timer
(django.contrib.auth's signals)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from clinic import audit
from clinic.middleware import record_activity
from clinic.models import AuditEvent


def record_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    audit.record(request=request, user=user, action=AuditEvent.Action.LOGIN, obj=user, clinic_id=None)


def start_idle_clock(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """Logging in is activity: the idle timer starts with the session, so the first page after it
    need not write the session again (clinic.middleware.IdleSessionTimeoutMiddleware)."""
    if request is not None and hasattr(request, "session"):
        record_activity(request)


def record_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is None:
        return  # logging out of a session that was not logged in
    audit.record(request=request, user=user, action=AuditEvent.Action.LOGOUT, obj=user, clinic_id=None)


def record_login_failure(sender: Any, credentials: dict, request: HttpRequest | None = None, **kwargs: Any) -> None:
    # credentials arrive with the password already masked; only the username typed is kept.
    username = str(credentials.get("username", ""))
    audit.record(request=request, user=None, action=AuditEvent.Action.LOGIN_FAILED, clinic_id=None,
                 object_type="User", username=username, object_repr=username[:200])
