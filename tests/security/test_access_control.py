"""Walks every URL pattern in the URLconf, so a new view is covered without anyone adding it here."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from lesions.models import Capture
from tests.factories import lesion_image

pytestmark = [pytest.mark.security, pytest.mark.django_db]

PUBLIC = {"login", "healthz"}
# Admin views check staff status themselves; they are walked separately below.
SKIP_NAMESPACES = {"admin"}


def app_url_patterns(resolver: URLResolver | None = None, prefix: str = ""):
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace in SKIP_NAMESPACES:
                continue
            yield from app_url_patterns(entry, prefix)
        elif isinstance(entry, URLPattern) and entry.name:
            yield entry


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
            kind = name.split("_")[0]
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


def test_own_objects_are_reachable(client_logged_in, own_objects):
    for pattern in app_url_patterns():
        if pattern.name in PUBLIC | POST_ONLY or pattern.name.endswith(("_upload", "_webcam", "_structures", "_assessment",
                                                            "_histopathology")):
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
