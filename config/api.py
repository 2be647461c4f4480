"""The REST API's URLs (/api/v1/): each app's routes, the OpenAPI schema and its docs page."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required, login_required
from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated

from clinic.api.urls import urlpatterns as clinic_api
from lesions.api.urls import urlpatterns as lesions_api


@csrf_exempt
@login_not_required
def not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """Any other path under /api/ answers in JSON, as the API's own 404s do."""
    return JsonResponse({"detail": "Not found."}, status=404)


class SchemaView(SpectacularAPIView):
    # The schema describes the API, not patient data: integrators and their tools read it freely.
    authentication_classes: list = []
    permission_classes = [AllowAny]


class DocsView(SpectacularSwaggerSplitView):
    # Interactive docs for signed-in staff of the app (session); the page and its init script are
    # both served from here, so the strict CSP (script-src 'self') holds.
    authentication_classes = [SessionAuthentication]
    permission_classes = [IsAuthenticated]
    template_name = "api/docs.html"


urlpatterns = [
    path("api/v1/schema/", login_not_required(SchemaView.as_view()), name="api_schema"),
    path("api/v1/docs/", login_required(DocsView.as_view(url_name="api_schema")), name="api_docs"),
    path("api/v1/", include((clinic_api + lesions_api, "api"))),
    re_path(r"^api/(?P<path>.*)$", not_found),
]
