"""Patient names stay out of cookies, URLs, log lines and the public health answer."""

from __future__ import annotations

import logging

import pytest
from django.test import Client
from django.urls import reverse

from lesions import services
from tests.factories import UserFactory, lesion_image

pytestmark = [pytest.mark.security, pytest.mark.django_db]


def test_flash_messages_with_patient_names_are_not_in_cookies(client_logged_in, clinic):
    response = client_logged_in.post(reverse("patient_create"), {
        "clinic": clinic.pk, "identifier": "MRN-77", "name": "Zebedee Quux", "sex": "unknown"})
    assert response.status_code == 302
    for cookie in response.cookies.values():
        assert "Zebedee" not in cookie.value and "Quux" not in cookie.value
    assert "messages" not in response.cookies
    page = client_logged_in.get(response.url)
    assert "Patient Zebedee Quux created." in page.content.decode()  # still shown, from the session


def test_patient_search_puts_no_name_in_the_url(client_logged_in, patient):
    response = client_logged_in.post(reverse("patient_list"), {"q": "Ada Example"})
    assert response.status_code == 302
    assert "Ada" not in response.url and "Example" not in response.url
    results = client_logged_in.get(response.url)
    content = results.content.decode()
    assert "MRN-A1" in content
    assert "?q=" not in content and "Ada+Example" not in content and "Ada%20Example" not in content
    start = content.index('role="search"')
    form_tag = content[content.rindex("<form", 0, start):start]
    assert 'method="post"' in form_tag


def test_a_name_in_the_query_string_is_not_used(client_logged_in, patient, other_clinic):
    from tests.factories import PatientFactory

    PatientFactory(clinic=patient.clinic, name="Zed Other", identifier="MRN-Z")
    content = client_logged_in.get(reverse("patient_list"), {"q": "Ada"}).content.decode()
    assert "MRN-Z" in content  # the whole list: GET does not search


def test_search_tokens_belong_to_the_session_and_expire(client_logged_in, clinician, patient, monkeypatch):
    from clinic import searches

    token_url = client_logged_in.post(reverse("patient_list"), {"q": "Ada"}).url
    other = Client()
    other.force_login(UserFactory(username="carol"))
    assert other.get(token_url).status_code == 302  # unknown to another session: back to the list
    monkeypatch.setattr(searches, "SEARCH_TOKEN_SECONDS", 0)
    response = client_logged_in.get(token_url)
    assert response.status_code == 302 and response.url == reverse("patient_list")


def test_search_with_a_nul_character_is_refused_cleanly(client_logged_in, patient):
    response = client_logged_in.post(reverse("patient_list"), {"q": "Ada\x00"})
    assert response.status_code == 400


def test_log_lines_carry_ids_never_names(client_logged_in, lesion, caplog):
    caplog.set_level(logging.DEBUG)
    patient = lesion.patient
    client_logged_in.get(reverse("patient_detail", args=[patient.pk]))
    client_logged_in.post(reverse("patient_list"), {"q": patient.name})
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    client_logged_in.get(reverse("lesion_case", args=[lesion.pk]))
    client_logged_in.get(reverse("capture_image", args=[capture.pk, "mask"]))  # a 404, logged
    client_logged_in.get(reverse("patient_detail", args=[patient.pk + 1000]))  # a 404, logged
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert caplog.records, "the flow above logs something"
    for secret in (patient.name, patient.identifier, lesion.label):
        assert secret not in text


def test_public_health_answer_is_only_ok_or_down(settings, monkeypatch):
    """Public: an overall ok/degraded/down, the names of the components that are down or degraded,
    and ok/down per check; never why (driver messages name hosts, users, passwords)."""
    from config import health

    def assert_public_only(response):
        body = response.json()
        assert set(body) <= {"status", "down", "degraded", "checks"}
        assert body["status"] in ("ok", "degraded", "down")
        assert set(body["down"]) | set(body["degraded"]) <= {"database", "storage", "broker", "workers"}
        assert all(value in ("ok", "down") for value in body["checks"].values())
        content = response.content.decode()
        assert "127.0.0.1" not in content and "Error" not in content and "hunter2" not in content
        return body

    settings.CELERY_BROKER_URL = "redis://user:hunter2@127.0.0.1:1/0"  # nothing listens on port 1
    response = Client().get("/healthz")
    assert response.status_code == 200  # uploads are still saved: degraded, not down
    body = assert_public_only(response)
    assert body["status"] == "degraded" and "broker" in body["degraded"] and body["down"] == []
    assert body["checks"]["broker"] == "down" and body["checks"]["database"] == "ok"

    monkeypatch.setattr(health, "check_storage", lambda: "EndpointConnectionError: http://127.0.0.1:9000/bucket")
    response = Client().get("/healthz")
    assert response.status_code == 503
    body = assert_public_only(response)
    assert body["status"] == "down" and body["down"] == ["storage"] and body["checks"]["storage"] == "down"


def test_health_details_are_for_staff_only(client_logged_in, clinician, settings):
    assert client_logged_in.get(reverse("healthz_detail")).status_code == 403
    anonymous = Client().get(reverse("healthz_detail"))
    assert anonymous.status_code == 302 and anonymous.url.startswith(reverse("login"))
    clinician.is_staff = True
    clinician.save()
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    detail = client_logged_in.get(reverse("healthz_detail"))
    assert detail.status_code == 200  # a broker outage degrades (analyses wait); it is not "down"
    body = detail.json()
    assert body["status"] == "degraded" and "broker" in body["degraded"]
    assert body["checks"]["broker"] not in ("ok", "down") and "answered" in body["workers"]  # the reason, for staff
