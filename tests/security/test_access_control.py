"""Walks every URL pattern in the URLconf, so a new view is covered without anyone adding it here."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from lesions.models import Capture
from tests.factories import lesion_image

pytestmark = [pytest.mark.security, pytest.mark.django_db]

# Public by design, each with its reason; every other route needs a login.
PUBLIC = {
    "login": "the sign-in page itself",
    "healthz": "load balancers and monitors ask unauthenticated; it answers ok/degraded/down only",
    "api_schema": "the OpenAPI schema describes the API, not patient data; integrators' tools read it",
}
# Script endpoints answer an anonymous caller 401 in JSON (their caller shows `error` and keeps the
# picture for another try) rather than a login redirect the script could not follow.
JSON_401 = {"lesion_webcam"}
# Admin views check staff status themselves; they are walked separately below. The REST API
# authenticates by token, not session: its routes are walked by the API tests below.
SKIP_NAMESPACES = {"admin", "api"}


def app_url_patterns(resolver: URLResolver | None = None, prefix: str = "", skip=frozenset(SKIP_NAMESPACES)):
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace in skip:
                continue
            yield from app_url_patterns(entry, prefix, skip)
        elif isinstance(entry, URLPattern) and entry.name:
            yield entry


def api_url_patterns():
    """Every named route of the REST API (namespace 'api'), as (URL name, pattern)."""
    for resolver in get_resolver().url_patterns:
        if isinstance(resolver, URLResolver) and resolver.namespace == "api":
            for entry in app_url_patterns(resolver, skip=frozenset()):
                yield f"api:{entry.name}", entry


def kwargs_for(pattern: URLPattern, objects: dict) -> dict:
    """Fill each URL parameter with an object of the given clinic, chosen by the view's name."""
    params = pattern.pattern.regex.groupindex
    name = pattern.name
    kwargs = {}
    for param in params:
        if param == "patient_pk":
            kwargs[param] = objects["patient"].pk
        elif param == "kind":
            kwargs[param] = "original"
        elif param == "pk":
            kind = name.replace("-", "_").split("_")[0]
            kwargs[param] = objects[kind].pk
        else:
            raise AssertionError(f"the access-control walker does not know URL parameter {param!r} of {name}")
    return kwargs


@pytest.fixture
def other_clinic_objects(other_lesion):
    from lesions import services

    capture = services.capture_create(request=None, user=None, lesion=other_lesion, data=lesion_image())
    return {"patient": other_lesion.patient, "lesion": other_lesion, "capture": capture,
            "analysis": capture.analyses.get()}


@pytest.fixture
def own_objects(lesion):
    from lesions import services

    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    return {"patient": lesion.patient, "lesion": lesion, "capture": capture, "analysis": capture.analyses.get()}


def test_the_walker_sees_the_clinical_views():
    names = {p.name for p in app_url_patterns()}
    assert {"patient_detail", "lesion_case", "capture_image", "lesion_webcam", "lesion_upload"} <= names


def test_anonymous_requests_are_sent_to_login(own_objects):
    client = Client()
    for pattern in app_url_patterns():
        if pattern.name in PUBLIC:
            continue
        url = reverse(pattern.name, kwargs=kwargs_for(pattern, own_objects))
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            if pattern.name in JSON_401:
                assert response.status_code == 401, f"{method.upper()} {url} gave {response.status_code}"
                assert response.headers["Content-Type"] == "application/json"
                continue
            assert response.status_code in (302, 403), f"{method.upper()} {url} gave {response.status_code}"
            if response.status_code == 302:
                assert response.url.startswith(reverse("login")), f"{url} redirected to {response.url}"


def test_other_clinics_objects_are_404_for_every_view(client_logged_in, other_clinic_objects):
    checked = 0
    for pattern in app_url_patterns():
        if pattern.name in PUBLIC or not pattern.pattern.regex.groupindex:
            continue
        url = reverse(pattern.name, kwargs=kwargs_for(pattern, other_clinic_objects))
        for method in ("get", "post"):
            response = getattr(client_logged_in, method)(url)
            assert response.status_code in (404, 405), f"{method.upper()} {url} gave {response.status_code}"
        checked += 1
    assert checked >= 10
    # Nothing of clinic B's patient leaked into an audit row as a view by clinic A's user.
    from clinic.models import AuditEvent

    assert not AuditEvent.objects.filter(clinic_id=other_clinic_objects["patient"].clinic_id,
                                         action="view").exists()


POST_ONLY = {"logout", "analysis_retry"}
STAFF_ONLY = {"healthz_detail"}  # 403 for clinicians: tests/security/test_no_phi_leaks.py


def test_own_objects_are_reachable(client_logged_in, own_objects):
    for pattern in app_url_patterns():
        if pattern.name in PUBLIC.keys() | POST_ONLY | STAFF_ONLY or pattern.name.endswith(
                ("_upload", "_webcam", "_structures", "_assessment", "_histopathology")):
            continue
        url = reverse(pattern.name, kwargs=kwargs_for(pattern, own_objects))
        response = client_logged_in.get(url)
        assert response.status_code == 200, f"GET {url} gave {response.status_code}"


def test_posts_without_csrf_token_are_refused(clinician, own_objects):
    client = Client(enforce_csrf_checks=True)
    client.force_login(clinician)
    for pattern in app_url_patterns():
        if pattern.name in {"healthz"}:
            continue
        url = reverse(pattern.name, kwargs=kwargs_for(pattern, own_objects))
        response = client.post(url, {})
        assert response.status_code in (403, 405), f"POST {url} without CSRF gave {response.status_code}"
    assert Capture.objects.count() == 1


def test_admin_needs_staff(client_logged_in):
    response = client_logged_in.get("/admin/clinic/patient/")
    assert response.status_code == 302 and "/admin/login/" in response.url


# ---------------------------------------------------------------- REST API (token per clinic)

API_METHODS = ("get", "post", "put", "patch", "delete")


def api_client_for(token: str):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_the_api_walker_covers_every_documented_route():
    from drf_spectacular.generators import SchemaGenerator

    documented = set(SchemaGenerator().get_schema(request=None, public=True)["paths"])
    walked = {"/" + str(p.pattern) for _, p in api_url_patterns()}
    walked = {"/api/v1" + path.replace("<int:pk>", "{id}") for path in walked}
    assert walked == documented
    assert len(walked) >= 9


def test_api_requests_without_a_token_get_401_everywhere(own_objects):
    from rest_framework.test import APIClient

    client = APIClient()
    for name, pattern in api_url_patterns():
        url = reverse(name, kwargs=kwargs_for(pattern, own_objects))
        for method in API_METHODS:
            response = getattr(client, method)(url)
            assert response.status_code == 401, f"{method.upper()} {url} gave {response.status_code}"
            assert response.headers["Content-Type"] == "application/json"


def test_another_clinics_records_are_404_on_every_api_route(api_token, other_clinic_objects):
    from django.db.models import Max

    from clinic.models import AuditEvent, Patient
    from lesions.models import Histopathology, Lesion

    Histopathology.objects.create(lesion=other_clinic_objects["lesion"], in_situ=True)
    client = api_client_for(api_token)
    before = {model: model.objects.aggregate(m=Max("updated_at" if hasattr(model, "updated_at") else "pk"))["m"]
              for model in (Patient, Lesion)}
    checked = 0
    for name, pattern in api_url_patterns():
        if not pattern.pattern.regex.groupindex:
            continue
        url = reverse(name, kwargs=kwargs_for(pattern, other_clinic_objects))
        allowed = {m.lower() for m in pattern.callback.cls().allowed_methods}
        for method in API_METHODS:
            response = getattr(client, method)(url, {"label": "x", "name": "x", "in_situ": True}, format="json")
            expected = 404 if method in allowed else 405
            assert response.status_code == expected, f"{method.upper()} {url} gave {response.status_code}"
            assert other_clinic_objects["patient"].name not in response.content.decode()
        checked += 1
    assert checked >= 8
    assert not AuditEvent.objects.filter(clinic_id=other_clinic_objects["patient"].clinic_id).exclude(
        action="create").exists()
    assert Lesion.objects.filter(patient=other_clinic_objects["patient"]).count() == 1
    assert before == {model: model.objects.aggregate(m=Max("updated_at" if hasattr(model, "updated_at") else "pk"))
                      ["m"] for model in (Patient, Lesion)}
    assert Histopathology.objects.get(lesion=other_clinic_objects["lesion"]).in_situ


def test_own_records_are_reachable_on_every_api_route(api_token, own_objects):
    from lesions.models import Histopathology

    Histopathology.objects.create(lesion=own_objects["lesion"], in_situ=True)
    analysis = own_objects["analysis"]
    analysis.status, analysis.overlay = "done", own_objects["capture"].image.name  # an overlay to export
    analysis.save()
    client = api_client_for(api_token)
    for name, pattern in api_url_patterns():
        url = reverse(name, kwargs=kwargs_for(pattern, own_objects))
        response = client.get(url)
        assert response.status_code == 200, f"GET {url} gave {response.status_code}"
