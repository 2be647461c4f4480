"""Faults with real processes: killed workers, crashing images, a restarted Redis, flaky storage."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from lesions import services
from lesions.models import Analysis
from tests.conftest import require_service, worker_environment
from tests.factories import lesion_image
from tests.support.processes import kill_hard, run_sweep, start_worker, stop_process, wait_for_log
from tests.support.servers import PrivateRedis

pytestmark = [pytest.mark.fault, pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def private_redis(tmp_path):
    require_service(shutil.which("redis-server") is not None, "redis-server on PATH")
    redis = PrivateRedis(tmp_path)
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def no_enqueue_from_web(monkeypatch):
    # Jobs reach the private broker only through the sweep below, never the shared test broker.
    monkeypatch.setattr(services, "enqueue_analysis", lambda analysis_id: None)
    monkeypatch.setattr(services, "enqueue_thumbnail", lambda capture_id: None)


@pytest.fixture
def worker_env(media_root, private_redis):
    return {**worker_environment(media_root), "CELERY_BROKER_URL": private_redis.url, "ANALYSIS_MAX_ATTEMPTS": "3"}


def wait_for_status(analysis: Analysis, statuses: set[str], timeout: float = 120.0) -> Analysis:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        analysis.refresh_from_db()
        if analysis.status in statuses:
            return analysis
        time.sleep(0.3)
    raise AssertionError(f"analysis {analysis.pk} is {analysis.status}, expected {statuses}")


def new_capture(lesion, **kwargs):
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image(**kwargs))
    return capture, capture.analyses.get()


def test_worker_killed_mid_analysis_then_work_completes_exactly_once(lesion, worker_env, no_enqueue_from_web,
                                                                     tmp_path):
    capture, analysis = new_capture(lesion)
    slow = start_worker(env={**worker_env, "LESIONTRACK_FAULT": "slow", "LESIONTRACK_FAULT_SECONDS": "60"},
                        name="slow", log_path=tmp_path / "slow.log", app="tests.support.fault_worker")
    run_sweep(worker_env)
    wait_for_status(analysis, {"running"}, timeout=60)
    kill_hard(slow)  # kill -9 in the middle of the analysis
    assert analysis.status == "running" and analysis.attempts == 1
    healthy = start_worker(env=worker_env, name="healthy", log_path=tmp_path / "healthy.log")
    try:
        run_sweep(worker_env)
        wait_for_status(analysis, {"done", "failed"})
        assert analysis.status == "done", analysis.error
        assert analysis.attempts == 2
        assert Analysis.objects.filter(capture=capture).count() == 1
        # A second delivery of the same job (the sweep running again) changes nothing.
        finished = analysis.finished_at
        run_sweep(worker_env)
        time.sleep(2)
        analysis.refresh_from_db()
        assert analysis.finished_at == finished and analysis.attempts == 2
    finally:
        stop_process(healthy)


def test_image_that_always_kills_the_worker_fails_after_bounded_attempts(lesion, worker_env, no_enqueue_from_web,
                                                                          tmp_path):
    _, deadly = new_capture(lesion, size=(333, 200))
    env = {**worker_env, "LESIONTRACK_FAULT": "crash_on_marker", "LESIONTRACK_FAULT_WIDTH": "333"}
    crashes = 0
    for attempt in range(5):
        worker = start_worker(env=env, name=f"crashy{attempt}", log_path=tmp_path / f"crash{attempt}.log",
                              app="tests.support.fault_worker")
        run_sweep(worker_env)
        try:
            worker.wait(60)
            crashes += 1
        except subprocess.TimeoutExpired:
            stop_process(worker)
        deadly.refresh_from_db()
        if deadly.status == "failed":
            break
    run_sweep(worker_env)  # the sweep fails what is out of attempts instead of re-enqueueing it
    deadly.refresh_from_db()
    assert deadly.status == "failed"
    assert "Gave up after 3 attempts" in deadly.error
    assert crashes == 3


def test_jobs_survive_a_redis_restart(lesion, worker_env, private_redis, no_enqueue_from_web, tmp_path):
    analyses = [new_capture(lesion)[1] for _ in range(3)]
    run_sweep(worker_env)  # three jobs queued in Redis, no worker yet
    private_redis.stop()  # Redis keeps nothing on disk: the queued jobs are gone
    private_redis.start()
    worker = start_worker(env=worker_env, name="after-restart", log_path=tmp_path / "restart.log")
    try:
        time.sleep(2)
        assert all(a.status == "queued" for a in Analysis.objects.all())
        run_sweep(worker_env)
        for analysis in analyses:
            assert wait_for_status(analysis, {"done", "failed"}).status == "done", analysis.error
    finally:
        stop_process(worker)


def test_transient_storage_error_is_retried_and_succeeds(lesion, worker_env, no_enqueue_from_web, tmp_path):
    _, analysis = new_capture(lesion)
    env = {**worker_env, "LESIONTRACK_FAULT": "flaky_storage", "LESIONTRACK_FAULT_DIR": str(tmp_path)}
    worker = start_worker(env=env, name="flaky", log_path=tmp_path / "flaky.log", app="tests.support.fault_worker")
    try:
        run_sweep(worker_env)
        assert wait_for_status(analysis, {"done", "failed"}).status == "done", analysis.error
        assert (tmp_path / f"failed-once-{analysis.capture_id}").exists()
        wait_for_log(worker, "Retry in", 5)
    finally:
        stop_process(worker)


def test_corrupt_image_fails_with_reason_and_does_not_block_the_queue(lesion, worker_env, no_enqueue_from_web,
                                                                       tmp_path, private_media):
    corrupt_capture, corrupt = new_capture(lesion)
    with open(os.path.join(private_media, corrupt_capture.image.name), "wb") as handle:
        handle.write(b"\xff\xd8\xff\xe0 not really a jpeg any more")
    _, good = new_capture(lesion)
    worker = start_worker(env=worker_env, name="corrupt", log_path=tmp_path / "corrupt.log")
    try:
        run_sweep(worker_env)
        assert wait_for_status(corrupt, {"done", "failed"}).status == "failed"
        assert "cannot be decoded" in corrupt.error
        assert corrupt.attempts == 1  # no retry for a bad image
        assert wait_for_status(good, {"done", "failed"}).status == "done"
    finally:
        stop_process(worker)
