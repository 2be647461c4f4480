"""Writing the audit trail. Called by services inside the same transaction as the change."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from clinic.models import ApiToken, AuditEvent


def client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    # Behind the reverse proxy the real client comes first in X-Forwarded-For.
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    return forwarded.split(",")[0].strip() or request.META.get("REMOTE_ADDR") or None


def record(*, request: HttpRequest | None, user: Any, action: str, obj: Any, clinic_id: int | None,
           detail: dict | None = None) -> AuditEvent:
    user = user if user is not None and getattr(user, "is_authenticated", False) else None
    token = getattr(request, "auth", None)  # a REST API request names the token it came with
    if isinstance(token, ApiToken):
        detail = {**(detail or {}), "api_token": token.prefix}
    return AuditEvent.objects.create(
        user=user,
        username=user.get_username() if user else "",
        action=action,
        object_type=type(obj).__name__,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        clinic_id=clinic_id,
        ip_address=client_ip(request),
        detail=detail or {},
    )
