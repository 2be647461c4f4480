"""Writing the audit trail. Called by services inside the same transaction as the change,
and by the views and signal receivers that record reads, searches and logins."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from clinic.client_address import client_ip
from clinic.models import ApiToken, AuditEvent

__all__ = ["client_ip", "record", "record_search", "search_digest"]


def record(*, request: HttpRequest | None, user: Any, action: str, obj: Any = None, clinic_id: int | None,
           detail: dict | None = None, object_type: str = "", object_id: str = "", object_repr: str = "",
           username: str = "") -> AuditEvent:
    """One audit row. `obj` names the record; without one, object_type/object_id say what was touched."""
    user = user if user is not None and getattr(user, "is_authenticated", False) else None
    token = getattr(request, "auth", None)  # a REST API request names the token it came with
    if isinstance(token, ApiToken):
        detail = {**(detail or {}), "api_token": token.prefix}
    return AuditEvent.objects.create(
        user=user,
        username=user.get_username() if user else username[:150],
        action=action,
        object_type=type(obj).__name__ if obj is not None else object_type,
        object_id=str(obj.pk) if obj is not None else object_id,
        object_repr=(str(obj) if obj is not None else object_repr)[:200],
        clinic_id=clinic_id,
        ip_address=client_ip(request),
        detail=detail or {},
    )


def record_search(*, request: HttpRequest, user: Any, clinic_id: int | None, query: str, listed: int,
                  capped: bool) -> AuditEvent:
    """A patient search, on the page or over the API: how many patients it listed and a digest of
    what was typed (search_digest). Past the cap the count stops: `results` is then the cap, and
    `results_capped` says that more matched."""
    detail = {"results": listed, **({"results_capped": True} if capped else {}), "query_hmac": search_digest(query)}
    return record(request=request, user=user, action=AuditEvent.Action.SEARCH, object_type="Patient",
                  clinic_id=clinic_id, detail=detail)


def search_digest(query: str) -> str:
    """A keyed hash of a search's text: an investigator holding the key can check whether a given
    name was searched for; the audit table alone does not reveal what was typed."""
    normalised = " ".join(query.casefold().split())
    return hmac.new(settings.SECRET_KEY.encode(), normalised.encode(), hashlib.sha256).hexdigest()
