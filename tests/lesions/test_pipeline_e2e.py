"""The production path end to end: HTTP upload -> Capture -> broker -> real worker process -> stored result."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.urls import reverse

from lesions import notes
from lesions.models import Analysis, Capture
from tests.conftest import E2E_WORKER_APPLICATION_NAME, require_service, using_postgres, using_redis
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


def wait_for_thumbnail(capture: Capture, timeout: float = 30.0):
    """The capture's thumbnail once the default queue's task has made it (empty if it never did)."""
    deadline = time.monotonic() + timeout
    while not capture.thumbnail and time.monotonic() < deadline:
        time.sleep(0.2)
        capture.refresh_from_db()
    return capture.thumbnail


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
    assert {"image_load_s", "segmentation_s", "classification_s", "features_s", "findings_s", "storage_write_s",
            "total_s"} <= set(analysis.timings)
    assert "histopathology" in analysis.stage_note
    assert "outline_on_border" in analysis.features["framing"]["measures"]  # quality check on the outline
    # Light work ran on the default queue: the thumbnail exists and is served behind the same check.
    assert wait_for_thumbnail(capture).name.startswith("thumbnails/")
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


def test_the_worker_keeps_its_database_session_from_task_to_task(analysis_worker, client_logged_in, lesion):
    """Celery's Django fix-up closed the worker's connection around every task, so each analysis and
    each thumbnail started a PostgreSQL session of its own (a third of the pipeline's throughput on
    two cores). Sessions are now kept as a web process keeps them (config.celery)."""
    require_service(using_postgres(), "DATABASE_URL=postgres://… (PostgreSQL)")
    sessions_after_each = []
    for n in range(2):
        response = client_logged_in.post(reverse("lesion_upload", args=[lesion.pk]),
                                         {"images": [_upload(f"lesion-{n}.jpg", lesion_image())], "modality": "dermoscopic"})
        assert response.status_code == 302
        capture = Capture.objects.filter(lesion=lesion).latest("id")
        assert wait_for_analysis(capture).status == Analysis.Status.DONE
        assert wait_for_thumbnail(capture)  # the upload's second task
        sessions_after_each.append(worker_sessions())
    assert sessions_after_each[0], "the worker closed its session after its tasks"
    assert sessions_after_each[0] == sessions_after_each[1]


def worker_sessions() -> set[tuple]:
    """The shared e2e worker's open database sessions: backend pid and start."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid, backend_start FROM pg_stat_activity WHERE application_name = %s "
                       "AND datname = current_database()", [E2E_WORKER_APPLICATION_NAME])
        return set(cursor.fetchall())


def _upload(name: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="image/jpeg")


def test_the_worker_images_prefork_worker_replaces_a_dead_child_without_killing_the_new_one(
        django_db_setup, django_db_blocker, media_root, tmp_path):
    """The worker image runs the prefork pool: a child loads the models in worker_process_init.
    When a child dies (out of memory, a crash), Celery starts another and by default kills it if
    it has not reported for duty within 4 s, less than loading the models takes: every replacement
    would be killed in turn and no analysis would run again."""
    import os
    import re
    import signal

    from tests.conftest import worker_environment
    from tests.support.processes import start_worker, stop_process

    with django_db_blocker.unblock():
        env = {**worker_environment(media_root), "ML_CACHE_DIR": str(tmp_path / "fresh-container-cache")}
    log = tmp_path / "worker.log"
    proc = start_worker(env=env, name="prefork", log_path=log, pool="prefork", concurrency=1,
                        queues="prefork-test", timeout=240)
    try:
        (first_child,) = re.findall(r"models loaded .* pid=(\d+)", log.read_text())
        assert len(list((tmp_path / "fresh-container-cache").glob("*.tflite"))) == 3  # a fresh container's
        os.kill(int(first_child), signal.SIGKILL)
        deadline = time.monotonic() + 240
        while len(re.findall(r"models loaded", log.read_text())) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1)
        text = log.read_text()
        assert "Timed out waiting for UP message" not in text, text[-3000:]
        children = re.findall(r"models loaded .* pid=(\d+)", text)
        assert len(children) == 2 and children[1] != first_child, text[-3000:]
    finally:
        stop_process(proc)
