"""Project-level views: the health check (public: ok/down per component; details for staff)."""

from __future__ import annotations

import logging

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config import health

logger = logging.getLogger("config.health")


def _checks() -> dict[str, str | None]:
    return {"database": health.check_database(), "broker": health.check_broker(),
            "storage": health.check_storage()}


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """For load balancers and monitors, unauthenticated: only ok/down per component. Why a
    component is down (driver messages name hosts, buckets, users) goes to the log."""
    checks = _checks()
    for name, problem in checks.items():
        if problem:
            logger.warning("health check failed component=%s problem=%s", name, problem)
    down = sorted(name for name, problem in checks.items() if problem)
    body = {
        "status": "ok" if not down else "down",
        "down": down,
        "checks": {name: ("ok" if problem is None else "down") for name, problem in checks.items()},
    }
    return JsonResponse(body, status=503 if down else 200)


@never_cache
@require_GET
def healthz_detail(request: HttpRequest) -> JsonResponse:
    """The same checks with their reasons and the workers' last answer, for staff (login first)."""
    if not request.user.is_staff:
        raise PermissionDenied
    checks = _checks()
    down = sorted(name for name, problem in checks.items() if problem)
    return JsonResponse({
        "status": "ok" if not down else "down",
        "down": down,
        "checks": {name: ("ok" if problem is None else problem) for name, problem in checks.items()},
        "workers": health.worker_status(),
    }, status=503 if down else 200)
