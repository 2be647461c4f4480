"""Every read of a patient's record, every search and every login leaves one audit row; the page's
own polling leaves none."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from clinic.models import AuditEvent
from lesions import services
from tests.factories import lesion_image

pytestmark = [pytest.mark.security, pytest.mark.django_db]


def views_of(obj, page: str | None = None):
    rows = AuditEvent.objects.filter(action="view", object_type=type(obj).__name__, object_id=str(obj.pk))
    return rows.filter(detail__page=page) if page else rows


def test_patient_edit_page_is_a_read(client_logged_in, patient):
    assert client_logged_in.get(reverse("patient_edit", args=[patient.pk])).status_code == 200
    row = views_of(patient, "edit").get()
    assert row.username == "alice" and row.clinic_id == patient.clinic_id


def test_lesion_create_and_edit_pages_are_reads(client_logged_in, lesion):
    assert client_logged_in.get(reverse("lesion_create", args=[lesion.patient.pk])).status_code == 200
    assert views_of(lesion.patient, "new lesion").count() == 1
    assert client_logged_in.get(reverse("lesion_edit", args=[lesion.pk])).status_code == 200
    assert views_of(lesion, "edit").count() == 1


def test_lesion_create_and_edit_are_recorded(client_logged_in, lesion):
    response = client_logged_in.post(reverse("lesion_create", args=[lesion.patient.pk]),
                                     {"label": "New one", "body_site": "unknown", "status": "monitoring"})
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="create", object_type="Lesion").count() == 1
    client_logged_in.post(reverse("lesion_edit", args=[lesion.pk]),
                          {"label": "Renamed", "body_site": "unknown", "status": "monitoring"})
    change = AuditEvent.objects.get(action="change", object_type="Lesion", object_id=str(lesion.pk))
    assert "label" in change.detail["fields"]


def test_compare_page_is_a_read(client_logged_in, lesion):
    assert client_logged_in.get(reverse("lesion_compare", args=[lesion.pk])).status_code == 200
    assert views_of(lesion, "compare").count() == 1


def test_search_is_recorded_without_its_text(client_logged_in, patient):
    response = client_logged_in.post(reverse("patient_list"), {"q": "Ada Exam"})
    assert response.status_code == 302
    row = AuditEvent.objects.get(action="search")
    assert row.username == "alice" and row.detail["results"] == 1
    assert "Ada" not in str(row.detail) and "Ada" not in row.object_repr
    assert len(row.detail["query_hmac"]) == 64
    client_logged_in.get(response.url)  # showing the results is not a second search
    assert AuditEvent.objects.filter(action="search").count() == 1


def test_login_logout_and_failed_login_are_recorded(clinician):
    client = Client()
    client.post(reverse("login"), {"username": "alice", "password": "wrong"}, REMOTE_ADDR="198.51.100.4")
    failed = AuditEvent.objects.get(action="login_failed")
    assert failed.username == "alice" and failed.user is None and failed.ip_address == "198.51.100.4"
    assert "wrong" not in str(failed.detail) + failed.object_repr
    client.post(reverse("login"), {"username": "alice", "password": "correct-horse-battery"})
    assert AuditEvent.objects.filter(action="login", user=clinician).count() == 1
    client.post(reverse("logout"))
    assert AuditEvent.objects.filter(action="logout", user=clinician).count() == 1


def test_one_view_of_a_case_page_is_one_row_however_long_it_polls(client_logged_in, lesion):
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    assert client_logged_in.get(reverse("lesion_case", args=[lesion.pk])).status_code == 200
    for _ in range(5):
        statuses = client_logged_in.get(reverse("lesion_statuses", args=[lesion.pk]))
        assert statuses.status_code == 200 and statuses.json()["analyses"][0]["capture_id"] == capture.pk
    card = client_logged_in.get(reverse("capture_card", args=[capture.pk]))
    assert card.status_code == 200
    content = card.content.decode()
    assert f'id="capture-{capture.pk}"' in content and 'data-role="lesion-stage-note"' in content
    assert views_of(lesion).count() == 1


def test_case_page_script_swaps_cards_from_the_fragment_not_the_page():
    from pathlib import Path

    script = (Path(__file__).resolve().parents[2] / "static" / "js" / "case.js").read_text()
    assert "cardUrl(" in script and "window.location.pathname" not in script
