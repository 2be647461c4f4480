"""Project-level views: the health check (public: ok/degraded/down per component; details for
staff) and the error pages."""

from __future__ import annotations

import logging
import uuid

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django.utils import timezone
from django.views import csrf
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config import health

logger = logging.getLogger("config.health")


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """For load balancers and monitors, unauthenticated: only ok/degraded/down per component. Why
    a component is down (driver messages name hosts, buckets, users) goes to the log."""
    body, status = health.report()
    for name, problem in body["checks"].items():
        if problem != "ok":
            logger.warning("health check failed component=%s problem=%s", name, problem)
    public = {"status": body["status"], "down": body["down"], "degraded": body["degraded"],
              "checks": {name: ("ok" if problem == "ok" else "down") for name, problem in body["checks"].items()}}
    return JsonResponse(public, status=status)


@never_cache
@require_GET
def healthz_detail(request: HttpRequest) -> JsonResponse:
    """The same checks with their reasons and the workers' last answer, for staff (login first)."""
    if not request.user.is_staff:
        raise PermissionDenied
    body, status = health.report()
    return JsonResponse(body, status=status)


def wants_json(request: HttpRequest) -> bool:
    """Script callers (the webcam page) ask for JSON; they must never be handed an HTML page."""
    return "application/json" in request.headers.get("Accept", "")


@login_not_required
def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: the designed page (or JSON for script callers), never a stack trace.

    Rendered without the request's context processors: the failure may be the database, and
    the auth context processor would touch it again."""
    when = timezone.now().strftime("%Y-%m-%d %H:%M UTC")
    reference = uuid.uuid4().hex[:8]
    logger.error("server error page shown reference=%s path=%s", reference, request.path)
    if wants_json(request):
        return JsonResponse({"ok": False, "error": "A server problem stopped this request; nothing was saved. "
                             "Please try again.", "reference": reference}, status=500)
    return HttpResponse(loader.get_template("500.html").render({"when": when, "reference": reference}), status=500)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: Django's page, or JSON for script callers (an expired page's token)."""
    if wants_json(request):
        return JsonResponse({"ok": False, "error": "The page is out of date (security token). Reload the page and "
                             "try again."}, status=403)
    return csrf.csrf_failure(request, reason=reason)
