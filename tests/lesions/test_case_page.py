"""Case page, report and compare page: one note, honest names, TDS and growth only where valid (#17)."""

from __future__ import annotations

import html
import json
import shutil
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.cache import caches
from django.urls import reverse
from django.utils import timezone

from lesions import services
from lesions.models import Analysis, Capture
from lesions.notes import note_from_features, point_with_calibration
from ml.contracts import read_model_manifest
from tests.factories import lesion_image

pytestmark = pytest.mark.django_db

NOTE_FIRST_LINE_MARK = "does not assess basal cell"


def capture_with_analysis(lesion, *, days_ago: int = 0, area: float = 20.0, unit: str = "mm",
                          modality: str = "dermoscopic", probability: float = 0.3, note: bool = True) -> Capture:
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image(), modality=modality,
                                      taken_at=timezone.now() - timedelta(days=days_ago))
    analysis = capture.analyses.get()
    analysis.status = Analysis.Status.DONE
    analysis.probability, analysis.threshold = probability, 0.2
    analysis.features = {
        "asymmetry": {"axes_asymmetric": 1, "index_major": 0.1, "index_minor": 0.02, "orientation_degrees": 0},
        "border": {"compactness": 1.2, "abrupt_segments": 3},
        "colours": {"present": ["light_brown", "dark_brown"], "count": 2, "fractions": {}},
        "diameter": {"value": area**0.5, "unit": unit, "area": area, "area_unit": f"{unit}²"},
    }
    if note:
        point = point_with_calibration(read_model_manifest(settings.ML_MODELS_DIR))
        analysis.operating_point = point.as_dict()
        analysis.stage_note = note_from_features(probability, point, analysis.features)
    analysis.save()
    return capture


def case_page(client, lesion) -> str:
    return html.unescape(client.get(reverse("lesion_case", args=[lesion.pk])).content.decode())


def test_the_case_page_shows_the_note_once_and_one_result_line_per_capture(client_logged_in, lesion):
    for days in (60, 30, 0):
        capture_with_analysis(lesion, days_ago=days)
    content = case_page(client_logged_in, lesion)
    assert content.count(NOTE_FIRST_LINE_MARK) == 1
    assert content.count("If this lesion proves to be melanoma") == 1
    assert content.count('data-role="result-line"') == 3
    assert content.count("<details") >= 3


def test_report_shows_the_note_once(client_logged_in, lesion):
    capture_with_analysis(lesion, days_ago=10)
    capture_with_analysis(lesion)
    content = client_logged_in.get(reverse("lesion_report", args=[lesion.pk])).content.decode()
    assert content.count(NOTE_FIRST_LINE_MARK) == 1


@pytest.fixture
def calibrated_models(tmp_path, settings):
    """A copy of the shipped manifests that says the classifier is calibrated."""
    for name in ("segmenter.json", "classifier.json"):
        shutil.copy(f"{settings.ML_MODELS_DIR}/{name}", tmp_path / name)
    manifest = json.loads((tmp_path / "classifier.json").read_text())
    manifest["calibrated"] = True
    (tmp_path / "classifier.json").write_text(json.dumps(manifest))
    settings.ML_MODELS_DIR = str(tmp_path)
    return tmp_path


@pytest.fixture
def uncalibrated_models(tmp_path, settings):
    """A copy of the shipped manifests that says the classifier is not calibrated (the shipped one is)."""
    for name in ("segmenter.json", "classifier.json"):
        shutil.copy(f"{settings.ML_MODELS_DIR}/{name}", tmp_path / name)
    manifest = json.loads((tmp_path / "classifier.json").read_text())
    manifest["calibrated"] = False
    manifest.pop("calibrator", None)
    (tmp_path / "classifier.json").write_text(json.dumps(manifest))
    settings.ML_MODELS_DIR = str(tmp_path)
    return tmp_path


def pages(client, lesion, first, second) -> dict[str, str]:
    return {
        "case": case_page(client, lesion),
        "report": client.get(reverse("lesion_report", args=[lesion.pk])).content.decode(),
        "compare": client.get(reverse("lesion_compare", args=[lesion.pk]),
                              {"a": first.pk, "b": second.pk}).content.decode(),
    }


def test_uncalibrated_output_is_a_score_everywhere(client_logged_in, admin_client, lesion, uncalibrated_models):
    first = capture_with_analysis(lesion, days_ago=30)
    second = capture_with_analysis(lesion)
    for name, content in pages(client_logged_in, lesion, first, second).items():
        assert "Melanoma score (not a probability)" in content or "melanoma score (not a probability)" in content, name
        assert "probability 0." not in content.lower().replace("not a probability", ""), name
    admin = admin_client.get("/admin/lesions/analysis/").content.decode()
    assert "Melanoma score (not a probability)" in admin
    csv = admin_client.post("/admin/lesions/analysis/", {"action": "export_csv",
                                                         "_selected_action": [first.analyses.get().pk]})
    assert csv["Content-Type"].startswith("text/csv")
    header = csv.content.decode().splitlines()[0]
    assert "Melanoma score (not a probability)" in header and "probability," not in header.lower()


def test_calibrated_output_is_a_probability_everywhere(client_logged_in, admin_client, lesion, calibrated_models):
    first = capture_with_analysis(lesion, days_ago=30)
    second = capture_with_analysis(lesion)
    for name, content in pages(client_logged_in, lesion, first, second).items():
        assert "Melanoma probability" in content or "melanoma probability" in content, name
        assert "not a probability" not in content, name
    assert "Melanoma probability" in admin_client.get("/admin/lesions/analysis/").content.decode()
    csv = admin_client.post("/admin/lesions/analysis/", {"action": "export_csv",
                                                         "_selected_action": [first.analyses.get().pk]})
    assert "Melanoma probability" in csv.content.decode().splitlines()[0]


def test_an_older_model_versions_output_is_never_called_a_probability(client_logged_in, lesion, calibrated_models):
    capture = capture_with_analysis(lesion)
    # A row from before analyses stored their operating point, made by another model version.
    Analysis.objects.filter(capture=capture).update(model_version="seg-old+cls-old", operating_point={})
    content = case_page(client_logged_in, lesion)
    assert "Melanoma score (not a probability)" in content
    # A row whose stored operating point says uncalibrated stays a score under today's calibrated model.
    Analysis.objects.filter(capture=capture).update(operating_point={"threshold": 0.2, "calibrated": False})
    assert "Melanoma score (not a probability)" in case_page(client_logged_in, lesion)


def post_structures(client, capture, structures, melanocytic=True):
    data = {"structures": structures}
    if melanocytic:
        data["melanocytic"] = "on"
    return client.post(reverse("capture_structures", args=[capture.pk]), data)


def test_tds_only_for_dermoscopic_captures_of_melanocytic_lesions(client_logged_in, lesion):
    dermoscopic = capture_with_analysis(lesion, days_ago=1)
    clinical = capture_with_analysis(lesion, modality="clinical")
    post_structures(client_logged_in, dermoscopic, ["dots"], melanocytic=False)
    assert dermoscopic.analyses.get().features["tds"] is None
    post_structures(client_logged_in, clinical, ["dots"])
    assert clinical.analyses.get().features["tds"] is None
    content = case_page(client_logged_in, lesion)
    assert "not been marked melanocytic" in content and "dermoscopic images only" in content
    post_structures(client_logged_in, dermoscopic, ["dots", "streaks"])
    assert dermoscopic.analyses.get().features["tds"]["d"] == 2
    content = case_page(client_logged_in, lesion)
    assert "A, B and C were measured automatically from the outline" in content
    assert "D was entered by the clinician" in content
    assert "automatic A measures the outline's shape only" in content


def test_structure_checkboxes_carry_stolz_counting_rules(client_logged_in, lesion):
    capture_with_analysis(lesion)
    content = case_page(client_logged_in, lesion)
    for label in ("more than 10% of the lesion", "Dots: more than two", "Globules: more than one",
                  "Branched streaks: more than two"):
        assert label in content


def test_growth_is_shown_only_between_comparable_captures(client_logged_in, lesion):
    capture_with_analysis(lesion, days_ago=60, area=20.0, unit="px")
    capture_with_analysis(lesion, days_ago=30, area=20.0)
    capture_with_analysis(lesion, days_ago=0, area=40.0, modality="clinical")
    content = case_page(client_logged_in, lesion)
    assert "not comparable in size: the earlier capture has no millimetre calibration" in content
    assert "not comparable in size: different modalities (dermoscopic, then clinical close-up)" in content
    assert "GROWTH FLAG" not in content and "area +" not in content


def test_growth_flag_states_the_uncertainty(client_logged_in, lesion):
    capture_with_analysis(lesion, days_ago=30, area=20.0)
    capture_with_analysis(lesion, area=30.0)
    content = case_page(client_logged_in, lesion)
    assert "area +50% (measurement uncertainty ±" in content and "GROWTH FLAG" in content


def test_a_finished_analysis_is_rendered_once_and_again_when_what_it_shows_changes(client_logged_in, lesion):
    """#15: the results block of a done analysis comes from the fragment cache on the next visit,
    and the key carries what the block is made of: an admin's edit of the finished row (its finish
    time untouched) shows at once, and so do new structures (a TDS row)."""
    capture = capture_with_analysis(lesion)
    url = reverse("lesion_case", args=[lesion.pk])
    first = client_logged_in.get(url)
    assert "lesions/_capture_body.html" in [t.name for t in first.templates]
    assert "TDS</th>" not in first.content.decode()
    caches["page_parts"].clear()  # the page body's own cache aside: the card's fragment cache alone
    assert "lesions/_capture_body.html" not in [t.name for t in client_logged_in.get(url).templates]
    Analysis.objects.filter(capture=capture).update(probability=0.987654)
    edited = case_page(client_logged_in, lesion).split('class="results"')[1].split("</details>")[0]
    assert "0.99" in edited
    services.capture_set_structures(request=None, user=None, capture=capture, melanocytic=True,
                                    structures=["pigment_network", "dots", "streaks"])
    after = case_page(client_logged_in, lesion).split('class="results"')[1].split("</details>")[0]
    assert "TDS</th>" in after and "0.99" in after
