"""Project-level views: the public health check and the error pages."""

from __future__ import annotations

import logging
import uuid

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django.utils import timezone
from django.views import csrf
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config import health

logger = logging.getLogger("config.views")


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
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
