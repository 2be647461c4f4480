from __future__ import annotations

import json

import pytest
from django.urls import reverse

from lesions import services
from lesions.models import Analysis, Capture, Histopathology
from tests.factories import lesion_image

pytestmark = pytest.mark.django_db


def finish_analysis(capture: Capture, *, area: float, probability: float = 0.3) -> Analysis:
    """Mark an analysis done as a worker would, with given size features (no model needed)."""
    analysis = capture.analyses.get()
    analysis.status = Analysis.Status.DONE
    analysis.probability = probability
    analysis.threshold = 0.2
    analysis.features = {
        "asymmetry": {"axes_asymmetric": 1, "index_major": 0.1, "index_minor": 0.02, "orientation_degrees": 0},
        "border": {"compactness": 1.2, "abrupt_segments": 3},
        "colours": {"present": ["light_brown", "dark_brown"], "count": 2, "fractions": {}},
        "diameter": {"value": area**0.5, "unit": "mm", "area": area, "area_unit": "mm²"},
    }
    analysis.stage_note = "image note"
    analysis.save()
    return analysis


def test_create_lesion_and_case_page(client_logged_in, patient):
    response = client_logged_in.post(reverse("lesion_create", args=[patient.pk]), {
        "label": "Back mole", "body_site": "posterior torso", "status": "monitoring", "notes": "irregular"})
    assert response.status_code == 302
    page = client_logged_in.get(response.url)
    content = page.content.decode()
    assert "Back mole" in content and "Decision support, not a diagnosis" in content
    assert "needs histopathology" in content or "needs\nhistopathology" in content


def test_assessment_and_histopathology_give_the_ajcc_stage(client_logged_in, lesion, clinician):
    response = client_logged_in.post(reverse("lesion_assessment", args=[lesion.pk]), {
        "clinical_diagnosis": "suspected melanoma", "decision": "excise", "status": "excised"})
    assert response.status_code == 302
    lesion.refresh_from_db()
    assert lesion.decision == "excise" and lesion.assessed_by == clinician and lesion.assessed_at
    response = client_logged_in.post(reverse("lesion_histopathology", args=[lesion.pk]), {
        "breslow_mm": "1.5", "ulceration": "on", "mitotic_rate_per_mm2": "2", "sentinel_node": "negative",
        "n_category": "N0", "m_category": "M0"})
    assert response.status_code == 302
    assert Histopathology.objects.get(lesion=lesion).breslow_mm == pytest.approx(1.5)
    content = client_logged_in.get(reverse("lesion_case", args=[lesion.pk])).content.decode()
    assert "stage IIA (T2b N0 M0)" in content


def test_histopathology_without_thickness_is_refused(client_logged_in, lesion):
    response = client_logged_in.post(reverse("lesion_histopathology", args=[lesion.pk]), {
        "sentinel_node": "not_done", "n_category": "N0", "m_category": "M0"})
    assert response.status_code == 400
    assert "Breslow thickness is needed" in response.content.decode()


def test_structures_give_a_tds_and_growth_is_flagged(client_logged_in, lesion, settings):
    from datetime import timedelta

    from django.utils import timezone

    settings.LESION_GROWTH_FLAG_FRACTION = 0.2
    first = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image(),
                                    taken_at=timezone.now() - timedelta(days=90))
    second = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    finish_analysis(first, area=20.0)
    finish_analysis(second, area=30.0)
    response = client_logged_in.post(reverse("capture_structures", args=[second.pk]),
                                     {"structures": ["pigment_network", "dots", "streaks"]})
    assert response.status_code == 302
    analysis = second.analyses.get()
    # A=1, B=3, C=2, D=3: 1.3 + 0.3 + 1.0 + 1.5 = 4.1 -> benign band
    assert analysis.features["tds"] == {"a": 1, "b": 3, "c": 2, "d": 3, "score": 4.1, "band": "benign"}
    assert "(TDS) 4.10: benign" in analysis.stage_note
    assert "operating threshold (0.20)" in analysis.stage_note  # the threshold of the model that ran
    content = client_logged_in.get(reverse("lesion_case", args=[lesion.pk])).content.decode()
    assert "area +50%" in content and "GROWTH FLAG" in content
    compare = client_logged_in.get(reverse("lesion_compare", args=[lesion.pk]),
                                   {"a": first.pk, "b": second.pk}).content.decode()
    assert "area +50%" in compare


def test_report_page_has_identifiers_and_model_version(client_logged_in, lesion):
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    analysis = finish_analysis(capture, area=10.0)
    content = client_logged_in.get(reverse("lesion_report", args=[lesion.pk])).content.decode()
    assert lesion.patient.identifier in content and lesion.label in content
    assert analysis.model_version in content


def test_status_json_for_polling(client_logged_in, lesion):
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    data = json.loads(client_logged_in.get(reverse("lesion_statuses", args=[lesion.pk])).content)
    assert data["analyses"][0]["capture_id"] == capture.pk and data["analyses"][0]["status"] == Analysis.Status.QUEUED


def test_webcam_endpoint_stores_a_capture(client_logged_in, lesion):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client_logged_in.post(reverse("lesion_webcam", args=[lesion.pk]), {
        "image": SimpleUploadedFile("webcam.png", lesion_image(fmt="PNG"), content_type="image/png"),
        "modality": "clinical"})
    assert response.status_code == 200 and response.json()["ok"]
    capture = Capture.objects.get()
    assert capture.source == "webcam" and capture.modality == "clinical"
    response = client_logged_in.post(reverse("lesion_webcam", args=[lesion.pk]), {
        "image": SimpleUploadedFile("webcam.png", b"broken", content_type="image/png"), "modality": "clinical"})
    assert response.status_code == 400 and "not an image" in response.json()["error"]
    assert Capture.objects.count() == 1


@pytest.mark.parametrize("url", ["/admin/clinic/patient/", "/admin/lesions/lesion/", "/admin/lesions/capture/",
                                 "/admin/lesions/analysis/", "/admin/clinic/auditevent/", "/admin/clinic/clinic/"])
def test_admin_changelists_render_with_search(admin_client, lesion, url):
    services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    response = admin_client.get(url, {"q": "MRN"})
    assert response.status_code == 200


def test_admin_reanalyse_action_queues_a_new_version(admin_client, lesion, monkeypatch):
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    monkeypatch.setattr(services, "current_model_version", lambda: "seg-new+cls-new")
    response = admin_client.post("/admin/lesions/capture/", {"action": "reanalyze_with_current_models",
                                                             "_selected_action": [capture.pk]})
    assert response.status_code == 302
    versions = set(capture.analyses.values_list("model_version", flat=True))
    assert "seg-new+cls-new" in versions and len(versions) == 2
