"""Project-level views: the public health check."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config import health


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": health.check_database(), "broker": health.check_broker(),
              "storage": health.check_storage()}
    down = sorted(name for name, problem in checks.items() if problem)
    body = {
        "status": "ok" if not down else "down",
        "down": down,
        "checks": {name: ("ok" if problem is None else problem) for name, problem in checks.items()},
        "workers": health.worker_status(),
    }
    return JsonResponse(body, status=503 if down else 200)
