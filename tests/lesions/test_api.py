"""The REST API: the same records, rules, cleaning and audit rows as the pages."""

from __future__ import annotations

import io
import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from clinic.models import AuditEvent, Patient
from lesions.models import Analysis, Capture, Histopathology, Lesion
from tests.factories import LesionFactory, PatientFactory, lesion_image

pytestmark = pytest.mark.django_db


def stored_files(root: str) -> set[str]:
    return {os.path.join(d, f) for d, _, files in os.walk(root) for f in files}


def test_patients_are_created_listed_searched_and_changed(api_client, clinic, clinician):
    created = api_client.post("/api/v1/patients/", {"identifier": "MRN-9", "name": "Zoe Api",
                                                     "date_of_birth": "1970-03-04", "sex": "female"})
    assert created.status_code == 201, created.content
    patient = Patient.objects.get(identifier="MRN-9")
    assert patient.clinic == clinic and patient.created_by == clinician
    PatientFactory(clinic=clinic, name="Other Person", identifier="MRN-10")
    found = api_client.get("/api/v1/patients/", {"q": "zoe"}).json()
    assert found["count"] == 1 and found["results"][0]["identifier"] == "MRN-9"
    changed = api_client.patch(f"/api/v1/patients/{patient.pk}/", {"skin_type": "II"})
    assert changed.status_code == 200 and changed.json()["skin_type"] == "II"
    rows = AuditEvent.objects.filter(object_type="Patient", object_id=str(patient.pk)).order_by("id")
    assert [(r.action, r.username) for r in rows] == [("create", "alice"), ("change", "alice")]
    assert rows[1].detail["fields"] == ["skin_type"] and rows[1].detail["api_token"]


def test_a_duplicate_identifier_is_refused_with_a_message(api_client, patient):
    response = api_client.post("/api/v1/patients/", {"identifier": patient.identifier, "name": "Twin"})
    assert response.status_code == 400
    assert "already exists" in response.json()["identifier"][0]
    assert Patient.objects.count() == 1


def test_viewing_a_record_is_audited_like_the_page(api_client, lesion):
    assert api_client.get(f"/api/v1/lesions/{lesion.pk}/").status_code == 200
    row = AuditEvent.objects.get(object_type="Lesion", action="view")
    assert row.username == "alice" and row.clinic_id == lesion.patient.clinic_id and row.ip_address == "127.0.0.1"
    assert row.detail["api_token"] == api_client._credentials["HTTP_AUTHORIZATION"].split("_")[1]


def test_lesions_are_created_and_assessed(api_client, patient, clinician):
    created = api_client.post(f"/api/v1/patients/{patient.pk}/lesions/",
                              {"label": "Left calf", "body_site": "lower extremity"})
    assert created.status_code == 201, created.content
    lesion = Lesion.objects.get(pk=created.json()["id"])
    assert lesion.patient == patient and lesion.assessed_at is None
    response = api_client.patch(f"/api/v1/lesions/{lesion.pk}/", {"decision": "biopsy"})
    assert response.status_code == 200
    lesion.refresh_from_db()
    assert lesion.decision == "biopsy" and lesion.assessed_by == clinician and lesion.assessed_at
    assert api_client.get(f"/api/v1/patients/{patient.pk}/lesions/").json()["results"][0]["label"] == "Left calf"


def _upload(api_client, lesion, data: bytes, name: str = "derm.jpg", **fields):
    return api_client.post(f"/api/v1/lesions/{lesion.pk}/captures/",
                           {"image": SimpleUploadedFile(name, data, content_type="image/jpeg"), **fields},
                           format="multipart")


def test_an_upload_is_cleaned_stored_and_queued_like_the_web_form(api_client, lesion, private_media):
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    response = _upload(api_client, lesion, lesion_image(exif=exif.tobytes()), mm_per_pixel="0.05",
                       device="DermLite", taken_at="2026-01-02T03:04:05Z")
    assert response.status_code == 201, response.content
    body = response.json()
    capture = Capture.objects.get(pk=body["id"])
    assert capture.lesion == lesion and capture.mm_per_pixel == 0.05 and capture.device == "DermLite"
    assert capture.taken_at.isoformat().startswith("2026-01-02T03:04:05")
    assert body["latest_analysis"]["status"] == "queued"
    assert capture.analyses.get().status == Analysis.Status.QUEUED
    with capture.image.open("rb") as stored:
        assert b"SecretCam" not in stored.read()
    assert AuditEvent.objects.filter(object_type="Capture", action="create", detail__source="upload").exists()


def test_field_of_view_gives_the_pixel_spacing(api_client, lesion):
    response = _upload(api_client, lesion, lesion_image((200, 100)), field_of_view_mm="20")
    assert response.status_code == 201
    assert Capture.objects.get().mm_per_pixel == pytest.approx(0.1)


@pytest.mark.parametrize("data,fields,field,message", [
    (b"not a picture at all", {}, "image", "not an image"),
    (b"", {}, "image", "empty"),
    (lesion_image(fmt="GIF"), {}, "image", "GIF files are not accepted"),
    (lesion_image(), {"mm_per_pixel": "100"}, "mm_per_pixel", "less than or equal"),
    (lesion_image(), {"mm_per_pixel": "nan"}, "mm_per_pixel", ""),
    (lesion_image(), {"modality": "xray"}, "modality", "not a valid choice"),
])
def test_bad_uploads_get_a_message_and_leave_nothing(api_client, lesion, private_media, data, fields, field,
                                                     message):
    before = stored_files(private_media)
    response = _upload(api_client, lesion, data, **fields)
    assert response.status_code == 400, response.content
    assert message in " ".join(response.json()[field])
    assert not Capture.objects.exists() and not Analysis.objects.exists()
    assert stored_files(private_media) == before


def test_analysis_reports_status_score_threshold_abcd_and_note(api_client, lesion):
    response = _upload(api_client, lesion, lesion_image())
    capture = Capture.objects.get(pk=response.json()["id"])
    analysis = capture.analyses.get()
    analysis.status, analysis.probability, analysis.threshold = Analysis.Status.DONE, 0.42, 0.3
    analysis.features = {"asymmetry": {"score": 1}, "diameter": {"value": 6.1, "unit": "mm"}, "other": 1}
    analysis.stage_note = "Image note."
    analysis.save()
    body = api_client.get(f"/api/v1/analyses/{analysis.pk}/").json()
    assert body["status"] == "done" and body["melanoma_probability"] == 0.42 and body["threshold"] == 0.3
    assert body["abcd"] == {"asymmetry": {"score": 1}, "diameter": {"value": 6.1, "unit": "mm"}}
    assert body["note"] == "Image note." and body["model_version"] == analysis.model_version
    listed = api_client.get(f"/api/v1/captures/{capture.pk}/analyses/").json()
    assert [a["id"] for a in listed["results"]] == [analysis.pk]


def test_histopathology_follows_the_forms_rules(api_client, lesion):
    url = f"/api/v1/lesions/{lesion.pk}/histopathology/"
    assert api_client.get(url).status_code == 404
    refused = api_client.put(url, {"in_situ": False, "ulceration": True})
    assert refused.status_code == 400
    assert "Breslow thickness is needed" in refused.json()["breslow_mm"][0]
    assert not Histopathology.objects.exists()
    # N and M start "not assessed" (#17): a complete report states them for the stage group.
    created = api_client.put(url, {"breslow_mm": "1.20", "ulceration": True, "sentinel_node": "negative",
                                   "n_category": "N0", "m_category": "M0"})
    assert created.status_code == 201, created.content
    assert "IIB" in created.json()["stage_note"] or "II" in created.json()["stage_note"]
    updated = api_client.put(url, {"in_situ": True})
    assert updated.status_code == 200
    histo = Histopathology.objects.get()
    assert histo.in_situ and histo.breslow_mm is None and not histo.ulceration
    assert api_client.get(url).json()["in_situ"] is True


def test_another_clinics_lesion_is_not_found(api_client, other_lesion):
    for url in (f"/api/v1/lesions/{other_lesion.pk}/", f"/api/v1/lesions/{other_lesion.pk}/captures/",
                f"/api/v1/patients/{other_lesion.patient.pk}/lesions/"):
        assert api_client.get(url).status_code == 404
    assert _upload(api_client, other_lesion, lesion_image()).status_code == 404
    assert not Capture.objects.exists()


def test_unknown_api_paths_answer_json_404(api_client):
    for url in ("/api/v1/nothing/", "/api/v1/patients/-1/", "/api/v2/patients/"):
        response = api_client.get(url)
        assert response.status_code == 404 and response.json() == {"detail": "Not found."}


def test_the_schema_is_public_and_the_docs_need_a_signed_in_user(clinician):
    schema = Client().get("/api/v1/schema/")
    assert schema.status_code == 200 and b"/api/v1/lesions/{id}/captures/" in schema.content
    anonymous = Client().get("/api/v1/docs/")
    assert anonymous.status_code == 302 and anonymous.url.startswith("/accounts/login/")
    browser = Client()
    browser.force_login(clinician)
    page = browser.get("/api/v1/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    # CSP allows scripts from 'self' only: no inline script, no CDN.
    assert "<script>" not in html.replace(" ", "") and "cdn" not in html.lower()
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    script = browser.get("/api/v1/docs/", {"script": ""})
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("application/javascript")
    assert "/api/v1/schema/" in script.content.decode()
    for src in ("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",):
        assert src in html
        assert browser.get(f"/static/{src}").status_code == 200


def test_the_committed_schema_is_the_generated_one():
    from pathlib import Path

    from django.core.management import call_command

    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    committed = (Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml").read_text()
    assert out.getvalue() == committed, ("docs/openapi.yaml is out of date: run "
                                         "python manage.py spectacular --file docs/openapi.yaml")


def test_lists_are_paginated_and_do_not_grow_queries_with_rows(api_client, clinic, django_assert_max_num_queries):
    patient = PatientFactory(clinic=clinic)
    lesion = LesionFactory(patient=patient)
    from lesions import services

    for _ in range(3):
        services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    with django_assert_max_num_queries(12):
        body = api_client.get(f"/api/v1/lesions/{lesion.pk}/captures/", {"limit": 2}).json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]
