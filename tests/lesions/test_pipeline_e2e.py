"""The production path end to end: HTTP upload -> Capture -> broker -> real worker process -> stored result."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.urls import reverse

from lesions import notes
from lesions.models import Analysis, Capture
from tests.conftest import require_service, using_postgres, using_redis
from tests.factories import lesion_image

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def wait_for_analysis(capture: Capture, timeout: float = 120.0) -> Analysis:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        analysis = capture.analyses.get()
        if analysis.is_finished:
            return analysis
        time.sleep(0.3)
    raise AssertionError(f"analysis still {analysis.status} after {timeout}s")


def test_suite_runs_on_real_postgres_and_redis():
    require_service(using_postgres(), "DATABASE_URL=postgres://… (PostgreSQL)")
    require_service(using_redis(), "CELERY_BROKER_URL=redis://… (Redis)")
    from config.celery import app

    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        assert "PostgreSQL" in cursor.fetchone()[0]
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)
        assert conn.transport.driver_type == "redis"


def test_uploaded_image_is_analysed_by_a_real_worker(analysis_worker, client_logged_in, lesion):
    response = client_logged_in.post(
        reverse("lesion_upload", args=[lesion.pk]),
        {"images": [_upload("lesion.jpg", lesion_image())], "modality": "dermoscopic", "mm_per_pixel": "0.05"},
    )
    assert response.status_code == 302, response.content[:500]
    capture = Capture.objects.get(lesion=lesion)
    # Saved before analysis: the row exists with its queued analysis right after the request.
    assert capture.analyses.count() == 1
    analysis = wait_for_analysis(capture)
    assert analysis.status == Analysis.Status.DONE, analysis.error
    assert 0.0 <= analysis.probability <= 1.0
    assert analysis.worker and analysis.device in {"CPU, LiteRT", "GPU, TensorFlow"}
    assert analysis.features["diameter"]["unit"] == "mm"
    assert analysis.mask.name and analysis.overlay.name
    assert {"image_load_s", "segmentation_s", "classification_s", "features_s", "total_s"} <= set(analysis.timings)
    assert "histopathology" in analysis.stage_note
    assert "outline_on_border" in analysis.features["framing"]["measures"]  # quality check on the outline
    # Light work ran on the default queue: the thumbnail exists and is served behind the same check.
    deadline = time.monotonic() + 30
    while not capture.thumbnail and time.monotonic() < deadline:
        time.sleep(0.2)
        capture.refresh_from_db()
    assert capture.thumbnail.name.startswith("thumbnails/")
    thumb = client_logged_in.get(reverse("capture_image", args=[capture.pk, "thumbnail"]))
    assert thumb.status_code == 200
    # The result is read back through the page, including the overlay image behind the access check.
    page = client_logged_in.get(reverse("lesion_case", args=[lesion.pk]))
    # Named by the one naming function: a probability only if the shipped manifest says calibrated.
    assert notes.current_score_name().capitalize().encode() in page.content
    assert b'data-role="result-line"' in page.content
    overlay = client_logged_in.get(reverse("capture_image", args=[capture.pk, "overlay"]))
    assert overlay.status_code == 200
    assert b"".join(overlay.streaming_content)[:8] == b"\x89PNG\r\n\x1a\n"


def _upload(name: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="image/jpeg")
