"""Faults leave nothing behind (in-process): atomic writes, the orphan reconciler, the pages
and answers a clinician gets when storage, the database or the broker fails, the sweep."""

from __future__ import annotations

import contextlib
import os
import time
from datetime import timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.db import OperationalError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from lesions import analysis as pipeline
from lesions import queueing, services
from lesions.models import Analysis, Capture
from tests.factories import lesion_image, textured_lesion_image
from tests.support.broker import publish_to

pytestmark = [pytest.mark.django_db]


def files_under(root: str) -> set[str]:
    return {os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files}


@pytest.fixture
def storage_failing_mid_write(settings, private_media):
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "tests.support.faulty_storage.FailingMidWriteStorage", "OPTIONS": {"location": private_media}}}
    return private_media


@pytest.fixture
def broker_down(monkeypatch):
    """The real Celery client publishing to a port where nothing listens."""
    publish_to(monkeypatch, "redis://127.0.0.1:1/0")


# 1. Atomic writes -------------------------------------------------------------------------

def test_a_write_failing_half_way_leaves_no_file_and_no_row(lesion, storage_failing_mid_write):
    before = files_under(storage_failing_mid_write)
    with pytest.raises(services.CaptureNotSavedError):
        services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    assert files_under(storage_failing_mid_write) == before
    assert not Capture.objects.exists()


def test_a_failed_row_commit_removes_the_stored_image(lesion, private_media, monkeypatch):
    def database_gone(**_kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(services.audit, "record", database_gone)
    before = files_under(private_media)
    with pytest.raises(services.CaptureNotSavedError):
        services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    assert files_under(private_media) == before
    assert not Capture.objects.exists()


class FixedAnalyzer:
    """Stands in for the models: a fixed mask, probability and outputs (the pipeline around it is real)."""

    device_description = "CPU, TensorFlow"
    names = ("seg", "cls")

    @property
    def model_manifest(self):
        return services.current_manifest()  # the shipped models' manifest (JSON only)

    def analyze(self, image, mm_per_pixel=None):
        from ml.inference import ImageAnalysis

        mask = np.zeros(image.shape[:2], np.uint8)
        h, w = mask.shape
        mask[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 1
        return ImageAnalysis(mask=mask, probability=0.1, overlay=image.copy(), heatmap=image.copy(),
                             features={}, timings={})


def realistic_capture(lesion):
    return services.capture_create(request=None, user=None, lesion=lesion, data=textured_lesion_image())


def test_analysis_outputs_are_removed_when_the_final_commit_fails(lesion, private_media, monkeypatch):
    capture = realistic_capture(lesion)
    analysis = capture.analyses.get()
    before = files_under(private_media)
    real_save = Analysis.save

    def save_fails_when_done(self, *args, **kwargs):
        if self.status == Analysis.Status.DONE:
            raise OperationalError("the database went away during the final commit")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Analysis, "save", save_fails_when_done)
    with pytest.raises(OperationalError):
        pipeline.run_analysis(analysis_id=analysis.pk, analyzer=FixedAnalyzer(), worker="t")
    assert files_under(private_media) == before  # mask, overlay and heat map gone


def test_a_failed_output_write_removes_the_outputs_already_written(lesion, settings, private_media):
    from tests.support.faulty_storage import FailingSecondWriteStorage

    capture = realistic_capture(lesion)
    before = files_under(private_media)
    FailingSecondWriteStorage.writes = 0
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "tests.support.faulty_storage.FailingSecondWriteStorage", "OPTIONS": {"location": private_media}}}
    with pytest.raises(pipeline.TransientAnalysisError):
        pipeline.run_analysis(analysis_id=capture.analyses.get().pk, analyzer=FixedAnalyzer(), worker="t")
    assert FailingSecondWriteStorage.writes == 2
    assert files_under(private_media) == before


def _age(root: str, name: str, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(os.path.join(root, name), (past, past))


def test_reconciler_removes_each_kind_of_old_orphan_and_keeps_the_rest(lesion, private_media, settings):
    settings.ORPHAN_GRACE_SECONDS = 3600
    capture = realistic_capture(lesion)
    pipeline.make_thumbnail(capture.pk)
    pipeline.run_analysis(analysis_id=capture.analyses.get().pk, analyzer=FixedAnalyzer(), worker="t")
    capture.refresh_from_db()
    done = capture.analyses.get()
    kept = {capture.image.name, capture.thumbnail.name, done.mask.name, done.overlay.name, done.heatmap.name}
    orphans = {"captures/0rphan.jpg", "thumbnails/0rphan.png", "analyses/0rphan-mask.png",
               "healthz/probe-0rphan.txt"}
    young = "captures/young-0rphan.jpg"
    for name in [*orphans, young]:
        os.makedirs(os.path.join(private_media, os.path.dirname(name)), exist_ok=True)
        with open(os.path.join(private_media, name), "wb") as handle:
            handle.write(b"half a file")
    for name in orphans | kept:
        _age(private_media, name, 7200)  # older than the grace period, referenced or not
    call_command("reconcile_storage")
    present = files_under(private_media)
    assert not orphans & present
    assert kept <= present
    assert young in present  # inside the grace period: may be a write about to commit
    os.remove(os.path.join(private_media, young))


def test_reconciler_reports_rows_whose_file_is_missing(lesion, private_media, capsys):
    capture = realistic_capture(lesion)
    os.remove(os.path.join(private_media, capture.image.name))
    call_command("reconcile_storage", "--dry-run")
    assert f"missing: {capture.image.name}" in capsys.readouterr().out
    assert Capture.objects.filter(pk=capture.pk).exists()  # reported, never changed


def test_beat_runs_the_reconciler_and_the_sweep(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"lesions.tasks.remove_orphan_files_task", "lesions.tasks.requeue_stuck_analyses_task"} <= tasks
    assert settings.CELERY_BEAT_SCHEDULE["requeue-stuck-analyses"]["schedule"] <= 60


# 2. What the clinician is told --------------------------------------------------------------

def test_upload_with_failing_storage_says_the_image_was_not_saved(client_logged_in, lesion,
                                                                  storage_failing_mid_write):
    from django.core.files.uploadedfile import SimpleUploadedFile

    before = files_under(storage_failing_mid_write)
    response = client_logged_in.post(reverse("lesion_upload", args=[lesion.pk]), {
        "images": [SimpleUploadedFile("a.jpg", lesion_image(), content_type="image/jpeg")],
        "modality": "dermoscopic"})
    assert response.status_code == 503
    assert "The image was not saved" in response.content.decode()
    assert files_under(storage_failing_mid_write) == before and not Capture.objects.exists()


def webcam_post(client, lesion, **headers):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(reverse("lesion_webcam", args=[lesion.pk]),
                       {"image": SimpleUploadedFile("webcam.png", lesion_image(fmt="PNG"), content_type="image/png"),
                        "modality": "clinical"}, headers={"accept": "application/json", **headers})


def test_webcam_with_failing_storage_answers_json(client_logged_in, lesion, storage_failing_mid_write):
    response = webcam_post(client_logged_in, lesion)
    assert response.status_code == 503
    assert response.json()["ok"] is False and "not saved" in response.json()["error"]


def test_webcam_answers_json_when_the_database_fails(client_logged_in, lesion, monkeypatch):
    from lesions import selectors

    def database_gone(*_args):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(selectors, "lesion_for", database_gone)
    client_logged_in.raise_request_exception = False
    response = webcam_post(client_logged_in, lesion)
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json" and response.json()["ok"] is False


def test_webcam_answers_json_when_the_session_has_ended(client, lesion):
    response = webcam_post(client, lesion)
    assert response.status_code == 401
    assert "session has ended" in response.json()["error"]


def test_server_error_page_is_designed_and_shows_no_trace(client_logged_in, lesion, monkeypatch):
    from lesions import selectors

    def database_gone(*_args):
        raise OperationalError("could not connect to server: secret-host-name")

    monkeypatch.setattr(selectors, "case_lesion_for", database_gone)
    client_logged_in.raise_request_exception = False
    response = client_logged_in.get(reverse("lesion_case", args=[lesion.pk]))
    body = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on our side" in body and "image was probably not saved" in body
    assert "Traceback" not in body and "secret-host-name" not in body and "OperationalError" not in body


@pytest.mark.django_db(transaction=True)
def test_upload_while_the_broker_is_down_is_saved_and_says_when_analysis_starts(
        client_logged_in, lesion, broker_down):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client_logged_in.post(reverse("lesion_upload", args=[lesion.pk]), {
        "images": [SimpleUploadedFile("a.jpg", lesion_image(), content_type="image/jpeg")],
        "modality": "dermoscopic"}, follow=True)
    assert "analysis will start when the queue is back" in response.content.decode()
    analysis = Analysis.objects.get()
    assert analysis.status == Analysis.Status.QUEUED and analysis.awaiting_broker


@pytest.mark.django_db(transaction=True)
def test_webcam_while_the_broker_is_down_says_so(client_logged_in, lesion, broker_down):
    response = webcam_post(client_logged_in, lesion)
    assert response.status_code == 200
    assert response.json()["analysis_queued"] is False
    assert "analysis will start when the queue is back" in response.json()["message"]


def test_enqueue_reports_failure_when_the_broker_is_down(broker_down):
    started = time.monotonic()
    assert queueing.enqueue_analysis(1) is False
    assert time.monotonic() - started < 5  # a web request does not hang on a dead broker


# 5. Sessions --------------------------------------------------------------------------------

def test_a_database_error_on_the_session_refresh_is_not_a_400(client_logged_in, lesion, monkeypatch):
    from django.contrib.sessions.models import Session

    def database_gone(self, *args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(Session, "save", database_gone)
    response = client_logged_in.get(reverse("lesion_case", args=[lesion.pk]))
    assert response.status_code == 200


def test_a_database_error_saving_changed_session_data_is_a_server_error(monkeypatch):
    from django.contrib.sessions.models import Session

    from config.sessions import SessionStore

    def database_gone(self, *args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    store = SessionStore()
    store["k"] = 1
    store.save()
    store["k"] = 2
    monkeypatch.setattr(Session, "save", database_gone)
    with pytest.raises(OperationalError):
        store.save()


# 4. The sweep -------------------------------------------------------------------------------

def test_sweep_never_sends_a_just_finished_analysis_back_to_queued(lesion, settings, monkeypatch):
    """The race, made deterministic: the analysis finishes between the sweep's read and its write."""
    settings.ANALYSIS_STUCK_AFTER_SECONDS = 60
    analysis = realistic_capture(lesion).analyses.get()
    Analysis.objects.filter(pk=analysis.pk).update(queued_at=timezone.now() - timedelta(hours=1),
                                                   status=Analysis.Status.RUNNING,
                                                   started_at=timezone.now() - timedelta(hours=1), attempts=1)
    real_ids = pipeline.stuck_analysis_ids
    sent = []

    def finished_meanwhile(deadline):
        ids = real_ids(deadline)
        Analysis.objects.filter(pk__in=ids).update(status=Analysis.Status.DONE, finished_at=timezone.now())
        return ids

    monkeypatch.setattr(pipeline, "stuck_analysis_ids", finished_meanwhile)
    monkeypatch.setattr(pipeline, "enqueue_analysis_or_flag", lambda pk: sent.append(pk) or True)
    assert pipeline.requeue_stuck_analyses() == []
    analysis.refresh_from_db()
    assert analysis.status == Analysis.Status.DONE and sent == []


def test_sweep_sends_rows_the_broker_never_took_at_once(lesion, settings, monkeypatch):
    settings.ANALYSIS_STUCK_AFTER_SECONDS = 600
    fresh = realistic_capture(lesion).analyses.get()
    waiting = realistic_capture(lesion).analyses.get()
    Analysis.objects.filter(pk=waiting.pk).update(awaiting_broker=True)
    sent = []
    monkeypatch.setattr(queueing, "enqueue_analysis", lambda pk: sent.append(pk) or True)
    assert pipeline.requeue_stuck_analyses() == [waiting.pk]
    assert sent == [waiting.pk]  # the fresh row (its message is in the broker) is left alone
    waiting.refresh_from_db()
    assert not waiting.awaiting_broker and fresh.pk not in sent


def test_sweep_enqueues_missing_thumbnails_but_not_unreadable_ones(lesion, settings, monkeypatch):
    settings.THUMBNAIL_STUCK_AFTER_SECONDS = 120
    old, unreadable, recent = (realistic_capture(lesion) for _ in range(3))
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Capture.objects.filter(pk__in=[old.pk, unreadable.pk]).update(created_at=an_hour_ago)
    Capture.objects.filter(pk=unreadable.pk).update(thumbnail_error="The stored image is missing")
    sent = []
    monkeypatch.setattr(pipeline, "enqueue_thumbnail", lambda pk: sent.append(pk) or True)
    assert pipeline.requeue_missing_thumbnails() == [old.pk]
    assert sent == [old.pk]


def test_transient_retries_outlast_a_long_outage_and_come_back_quickly(settings):
    from lesions.tasks import analyze_capture_task, make_thumbnail_task, retry_countdown

    for task in (analyze_capture_task, make_thumbnail_task):
        waits = [retry_countdown(n) for n in range(task.max_retries)]
        assert sum(waits) >= 10 * 60  # a ten-minute database outage does not exhaust them
        assert max(waits) <= 30  # once the database is back, the next try comes within 30 s


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("then", "raised", "settled"), [
    ("a query fails", OperationalError, (Analysis.Status.QUEUED, 0)),  # called directly, retry() re-raises
    ("the image is bad", None, (Analysis.Status.FAILED, 1)),
])
def test_a_connection_dropped_during_the_analysis_still_settles_the_row(lesion, monkeypatch, then, raised, settled):
    """The database ends the worker's session mid-analysis (a restart, a failover, a network cut).
    The task's own write then fails on the dead connection, and is made again on a new one:
    after a failed query the row goes back to queued with its attempt returned; after a bad
    image (or a timeout: the same write) it is failed. Neither is left running with the attempt
    spent, for the sweep to run again."""
    from django.db import connection

    from lesions import tasks

    if connection.vendor != "postgresql":
        pytest.skip("ends a PostgreSQL session from outside")
    monkeypatch.setattr(services, "enqueue_analysis_or_flag", lambda analysis_id: True)
    monkeypatch.setattr(services, "enqueue_thumbnail", lambda capture_id: True)
    monkeypatch.setattr(tasks, "load_analyzer", lambda: None)  # the read fails before any model runs
    analysis = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image()).analyses.get()

    def read_while_the_session_is_ended(capture):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        other = connection.get_new_connection(connection.get_connection_params())
        try:
            other.cursor().execute("SELECT pg_terminate_backend(%s)", [pid])
        finally:
            other.close()
        if then == "the image is bad":  # no query between: the task's write is the first on the dead connection
            raise pipeline.BadImageError("The stored image cannot be decoded (test).")
        return Capture.objects.filter(pk=capture.pk).exists()  # the first query after it fails

    monkeypatch.setattr(pipeline, "read_capture_bytes", read_while_the_session_is_ended)
    with pytest.raises(raised) if raised else contextlib.nullcontext():
        tasks.analyze_capture_task(analysis.pk)
    analysis.refresh_from_db()
    assert (analysis.status, analysis.attempts) == settled
    if raised:
        assert analysis.error.startswith("retrying: ")
    else:
        assert analysis.error == "The stored image cannot be decoded (test)."


def test_thumbnail_of_a_missing_image_is_recorded_so_the_sweep_stops_asking(lesion, private_media):
    capture = realistic_capture(lesion)
    os.remove(os.path.join(private_media, capture.image.name))
    with pytest.raises(pipeline.BadImageError):
        pipeline.make_thumbnail(capture.pk)
    capture.refresh_from_db()
    assert "missing" in capture.thumbnail_error and not capture.thumbnail


# 3. Health ------------------------------------------------------------------------------------

def test_health_storage_check_writes(settings, tmp_path):
    """A folder that cannot be written: exists() still answers, only a write shows the fault."""
    from config import health

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the media folder should be")
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(blocker / "media")}}}
    problem = health.check_storage()
    assert problem and "NotADirectoryError" in problem
    body = Client().get("/healthz").json()
    assert body["status"] == "down" and body["down"] == ["storage"]


def test_health_storage_probe_leaves_nothing(private_media):
    from config import health

    before = files_under(private_media)
    assert health.check_storage() is None
    assert files_under(private_media) == before


def test_healthz_says_degraded_when_no_worker_answers(tmp_path, monkeypatch, settings, admin_client):
    import shutil

    from config import health
    from tests.conftest import require_service
    from tests.support.servers import PrivateRedis

    require_service(shutil.which("redis-server") is not None, "redis-server on PATH")
    redis = PrivateRedis(tmp_path)
    redis.start()
    try:
        publish_to(monkeypatch, redis.url)  # a broker that is up, with no worker on it
        settings.CELERY_BROKER_URL = redis.url
        monkeypatch.setitem(health._worker_cache, "checked_at", 0.0)
        response = Client().get("/healthz")
        body = response.json()
        assert response.status_code == 200
        assert body["status"] == "degraded" and body["degraded"] == ["workers"]
        # The workers' answer is a detail for staff (the public /healthz says ok/degraded/down only).
        assert admin_client.get("/healthz/detail").json()["workers"]["answered"] is False
    finally:
        redis.stop()


# 7. A read-only media folder (a real read-only mount, not a patched storage) ---------------------

@pytest.fixture
def read_only_media(settings, tmp_path):
    """A private media folder that can be flipped read-only with a bind mount (needs root)."""
    import subprocess

    from tests.conftest import require_service

    media = tmp_path / "media"
    media.mkdir()
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(media)}}}
    mounted = subprocess.run(["mount", "--bind", str(media), str(media)], capture_output=True).returncode == 0
    require_service(mounted, "permission to bind-mount (run as root) for the read-only media test")

    def set_read_only(read_only: bool) -> None:
        mode = "remount,bind,ro" if read_only else "remount,bind,rw"
        subprocess.run(["mount", "-o", mode, str(media)], check=True, capture_output=True)

    yield media, set_read_only
    subprocess.run(["umount", str(media)], capture_output=True)


def test_read_only_media_folder(client_logged_in, admin_client, lesion, read_only_media):
    from django.core.files.uploadedfile import SimpleUploadedFile

    media, set_read_only = read_only_media
    earlier = realistic_capture(lesion)  # stored while the folder was writable
    set_read_only(True)
    try:
        before = files_under(str(media))
        # Health says storage is down (exists() alone would have said ok).
        body = Client().get("/healthz").json()
        assert body["status"] == "down" and "storage" in body["down"] and body["checks"]["storage"] == "down"
        # Why, for staff only (the public answer carries no reasons).
        assert "Read-only" in admin_client.get("/healthz/detail").json()["checks"]["storage"]
        # An upload is refused with the message, and nothing is kept.
        response = client_logged_in.post(reverse("lesion_upload", args=[lesion.pk]), {
            "images": [SimpleUploadedFile("a.jpg", textured_lesion_image(seed=9), content_type="image/jpeg")],
            "modality": "dermoscopic"})
        assert response.status_code == 503 and "The image was not saved" in response.content.decode()
        assert Capture.objects.count() == 1
        # An analysis cannot store its outputs: a transient error (retried), nothing written, row not done.
        with pytest.raises(pipeline.TransientAnalysisError):
            pipeline.run_analysis(analysis_id=earlier.analyses.get().pk, analyzer=FixedAnalyzer(), worker="t")
        assert files_under(str(media)) == before
    finally:
        set_read_only(False)
    # Writable again: the retried analysis completes.
    done = pipeline.run_analysis(analysis_id=earlier.analyses.get().pk, analyzer=FixedAnalyzer(), worker="t")
    assert done.status == Analysis.Status.DONE
