"""Security headers Django does not set itself."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

# Same-origin everything; blob:/data: images for the webcam preview and the captured still.
# Camera access is allowed for this origin only (Permissions-Policy), which the webcam page needs.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob: https:; media-src 'self' blob: mediastream:; "
    "script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'self'; "
    "frame-ancestors 'none'; form-action 'self'"
)


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Permissions-Policy", "camera=(self), microphone=(), geolocation=()")
        if getattr(request, "user", None) is not None and request.user.is_authenticated:
            # Patient data must not sit in shared caches or the browser's back-forward cache.
            response.headers.setdefault("Cache-Control", "no-store, private")
        return response


LAST_ACTIVITY_KEY = "last_activity"


def passive_request(view: Callable) -> Callable:
    """Mark a view that the page calls by itself (status polling, fragments): it neither counts as
    the clinician's activity nor refreshes the session."""
    view.passive_request = True
    return view


ACTIVITY_RESOLUTION_SECONDS = 60


def record_activity(request: HttpRequest, now: float | None = None) -> None:
    """The clinician did something: restart the idle timer (saved with the session)."""
    request.session[LAST_ACTIVITY_KEY] = time.time() if now is None else now


def idle_seconds(request: HttpRequest) -> float:
    last = request.session.get(LAST_ACTIVITY_KEY)
    return time.time() - last if isinstance(last, (int, float)) else 0.0


class IdleSessionTimeoutMiddleware:
    """Ends a session after SESSION_COOKIE_AGE seconds without the clinician doing anything.

    The last activity lives in the session itself, so every tab shares it: activity in any tab keeps
    the session, polling in any tab does not (SESSION_SAVE_EVERY_REQUEST is off, and passive views
    never write it). Placed before LoginRequiredMiddleware, so an ended session is sent to login.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func: Callable, view_args, view_kwargs) -> None:
        if not request.user.is_authenticated:
            return None
        now = time.time()
        last = request.session.get(LAST_ACTIVITY_KEY)
        if isinstance(last, (int, float)) and now - last > settings.SESSION_COOKIE_AGE:
            logout(request)
            return None
        if getattr(view_func, "passive_request", False):
            return None
        # Written at most once per ACTIVITY_RESOLUTION_SECONDS: every write is an UPDATE of the
        # session row, which concurrent requests of one clinician (tabs, images) queue on; a
        # 30-minute timeout loses nothing by counting activity to the minute.
        if not isinstance(last, (int, float)) or now - last >= ACTIVITY_RESOLUTION_SECONDS:
            record_activity(request, now)
        return None


class RejectNulCharactersMiddleware:
    """A NUL character in a query parameter is refused with 400 (PostgreSQL cannot store or compare
    text holding one, so any view or admin filter passing it to a query would fail with a 500)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if any("\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()):
            return HttpResponseBadRequest("A query parameter holds a NUL character.", content_type="text/plain")
        return self.get_response(request)
