"""Each analysis keeps the operating point (threshold and the figures measured at it) of the
model that ran, so a note rebuilt later never mixes one model's threshold with another's figures."""

from __future__ import annotations

import pytest
from django.urls import reverse

from lesions import notes, services
from lesions.models import Analysis, Capture
from tests.factories import lesion_image

pytestmark = pytest.mark.django_db

FEATURES = {
    "asymmetry": {"axes_asymmetric": 1, "index_major": 0.1, "index_minor": 0.02, "orientation_degrees": 0},
    "border": {"compactness": 1.2, "abrupt_segments": 3},
    "colours": {"present": ["light_brown", "dark_brown"], "count": 2, "fractions": {}},
    "diameter": {"value": 4.0, "unit": "mm", "area": 12.0, "area_unit": "mm²"},
}


def done_analysis(capture: Capture, *, model_version: str, threshold: float, operating_point: dict) -> Analysis:
    analysis = capture.analyses.get()
    analysis.model_version = model_version
    analysis.status = Analysis.Status.DONE
    analysis.probability = 0.35
    analysis.threshold = threshold
    analysis.operating_point = operating_point
    analysis.features = dict(FEATURES)
    analysis.stage_note = "image note"
    analysis.save()
    return analysis


def shipped_figures() -> tuple[str, str]:
    point = services.current_manifest().operating_point()
    assert point.sensitivity is not None and point.specificity is not None  # the shipped models quote figures
    return f"{point.sensitivity:.0%}", f"{point.specificity:.0%}"


def post_structures(client, capture: Capture) -> Analysis:
    response = client.post(reverse("capture_structures", args=[capture.pk]), {"structures": ["dots", "streaks"]})
    assert response.status_code == 302
    return capture.analyses.get()


def test_note_rebuilt_after_structures_quotes_the_figures_of_the_model_that_ran(client_logged_in, lesion):
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    done_analysis(capture, model_version="seg-old+cls-old", threshold=0.4,
                  operating_point={"threshold": 0.4, "sensitivity": 0.81, "specificity": 0.72,
                                   "model_version": "old"})
    note = post_structures(client_logged_in, capture).stage_note
    assert "(0.40)" in note
    assert "found 81% of melanomas" in note and "with 72% specificity" in note
    shipped_sensitivity, shipped_specificity = shipped_figures()
    assert f"found {shipped_sensitivity} of melanomas" not in note


def test_a_row_from_before_operating_points_of_another_model_quotes_no_figures(client_logged_in, lesion):
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    done_analysis(capture, model_version="seg-old+cls-old", threshold=0.4, operating_point={})
    note = post_structures(client_logged_in, capture).stage_note
    assert "(0.40)" in note
    assert "sensitivity" not in note  # the figures of today's model belong to another threshold


def test_a_row_from_before_operating_points_of_the_current_model_keeps_its_figures(client_logged_in, lesion):
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    current = services.current_manifest()
    done_analysis(capture, model_version=current.version, threshold=current.classifier.threshold, operating_point={})
    note = post_structures(client_logged_in, capture).stage_note
    shipped_sensitivity, shipped_specificity = shipped_figures()
    assert f"found {shipped_sensitivity} of melanomas" in note and f"with {shipped_specificity} specificity" in note


def test_the_manifest_is_read_once_per_process(monkeypatch):
    first = services.current_manifest()
    monkeypatch.setattr("ml.contracts.read_model_manifest", lambda *a, **k: pytest.fail("read again"))
    assert services.current_manifest() is first
    assert services.current_model_version() == first.version


class StubAnalyzer:
    """What lesions.analysis needs from ml.inference.Analyzer, without TensorFlow."""

    device_description = "CPU, TensorFlow"
    names = ("unet", "cls")

    def __init__(self, manifest) -> None:
        self.model_manifest = manifest

    def analyze(self, image, mm_per_pixel=None):
        import numpy as np

        from ml.inference import ImageAnalysis

        mask = np.zeros(image.shape[:2], np.uint8)
        mask[10:20, 10:20] = 1
        return ImageAnalysis(mask=mask, probability=0.42, overlay=image, heatmap=None, features=dict(FEATURES))


def test_a_finished_analysis_stores_the_operating_point_its_note_quotes(lesion, tmp_path):
    import json
    import shutil

    from lesions.analysis import run_analysis
    from ml.contracts import DEFAULT_MODELS_DIR, read_model_manifest

    models = tmp_path / "models"
    models.mkdir()
    for name in ("segmenter.json", "classifier.json"):
        shutil.copy(DEFAULT_MODELS_DIR / name, models / name)
    meta = json.loads((models / "classifier.json").read_text())
    meta["test_metrics"].update(threshold=meta["threshold"], sensitivity=0.876, specificity=0.654,
                                sensitivity_ci95=[0.8, 0.93])
    meta["version"] = "stub-version"
    (models / "classifier.json").write_text(json.dumps(meta))
    manifest = read_model_manifest(models)

    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    analysis = run_analysis(analysis_id=capture.analyses.get().pk, analyzer=StubAnalyzer(manifest), worker="test")
    analysis.refresh_from_db()
    assert analysis.is_done
    # The manifest's operating point plus whether the classifier is calibrated (#17: naming the output).
    assert analysis.operating_point == notes.point_with_calibration(manifest).as_dict()
    assert meta["calibrated"] is True  # the shipped classifier is Platt-calibrated
    assert analysis.operating_point["calibrated"] is True
    assert analysis.operating_point["sensitivity_ci95"] == [0.8, 0.93]
    assert analysis.threshold == meta["threshold"] and analysis.classifier_name == "cls stub-version"
    assert "found 88% of melanomas" in analysis.stage_note and "with 65% specificity" in analysis.stage_note
