"""A poor capture is stored and analysed, marked with the reason, and the clinician invited to retake."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image

from lesions import analysis as pipeline
from lesions import services
from lesions.models import Analysis, Capture
from ml import quality
from ml.contracts import DEFAULT_MODELS_DIR, read_model_manifest
from ml.inference import ImageAnalysis
from tests.factories import lesion_image

pytestmark = pytest.mark.django_db


def jpeg(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="JPEG", quality=95)
    return out.getvalue()


def sharp_array() -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(lesion_image((320, 240), radius=60))))


def test_a_blurred_upload_is_stored_queued_and_marked(client_logged_in, lesion):
    blurred = jpeg(quality.blurred(sharp_array(), sigma_fraction=0.03))
    response = client_logged_in.post(reverse("lesion_upload", args=[lesion.pk]), {
        "images": [_upload("blurred.jpg", blurred)], "modality": "dermoscopic"})
    assert response.status_code == 302
    capture = Capture.objects.get(lesion=lesion)
    assert capture.analyses.get().status == Analysis.Status.QUEUED  # analysed all the same
    assert [i["code"] for i in capture.quality_issues] == ["blurred"]
    assert capture.quality["measures"]["laplacian_variance"] < quality.MIN_LAPLACIAN_VARIANCE
    content = client_logged_in.get(reverse("lesion_case", args=[lesion.pk])).content.decode()
    assert "Image quality:" in content and "looks blurred" in content and "Retake this capture" in content


def test_a_good_capture_carries_no_warning(client_logged_in, lesion):
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image((320, 240), radius=60))
    assert capture.quality_issues == [] and capture.quality["measures"]
    assert "Image quality:" not in client_logged_in.get(reverse("lesion_case", args=[lesion.pk])).content.decode()


def test_a_failing_check_never_blocks_the_capture(lesion, monkeypatch):
    def broken(_image):
        raise RuntimeError("boom")

    monkeypatch.setattr(quality, "check_image", broken)
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    assert capture.pk and capture.quality == {}


class CutLesionAnalyzer:
    """Stands in for the models: the outline runs off the image's left edge."""

    device_description, names = "CPU, TensorFlow", ("unet", "cnn")

    def __init__(self) -> None:
        self.model_manifest = read_model_manifest(DEFAULT_MODELS_DIR)  # the shipped models' manifest

    def analyze(self, image, mm_per_pixel=None):
        height, width = image.shape[:2]
        yy, xx = np.mgrid[:height, :width]
        mask = ((yy - height / 2) ** 2 + (xx + 5) ** 2 < (height / 3) ** 2).astype(np.uint8)
        features = {"asymmetry": {"axes_asymmetric": 0, "index_major": 0, "index_minor": 0, "orientation_degrees": 0},
                    "border": {"compactness": 1, "abrupt_segments": 0},
                    "colours": {"present": ["dark_brown"], "count": 1, "fractions": {}},
                    "diameter": {"value": 5, "unit": "px", "area": 20, "area_unit": "px²"}}
        return ImageAnalysis(mask, 0.2, image, None, features, {})


def test_framing_from_the_outline_is_stored_with_the_analysis(client_logged_in, lesion):
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image((320, 240), radius=60))
    done = pipeline.run_analysis(analysis_id=capture.analyses.get().pk, analyzer=CutLesionAnalyzer(), worker="test")
    assert done.status == Analysis.Status.DONE
    assert [i["code"] for i in done.framing_issues] == ["lesion_cut"]
    content = client_logged_in.get(reverse("lesion_case", args=[lesion.pk])).content.decode()
    assert "runs off the edge of the image" in content


def _upload(name: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="image/jpeg")
