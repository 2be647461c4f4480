"""Faults with real processes: killed workers, crashing images, a restarted Redis, flaky storage."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from lesions import services
from lesions.models import Analysis
from lesions.queueing import ANALYZE_TASK
from tests.conftest import require_service, using_postgres, worker_environment
from tests.factories import textured_lesion_image
from tests.lesions.test_pipeline_e2e import wait_for_thumbnail
from tests.support.broker import publish_to
from tests.support.processes import kill_hard, run_sweep, start_beat, start_worker, stop_process, wait_for_log
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
def web_enqueues_to_private_redis(private_redis, monkeypatch):
    """This (web) process publishes to the private broker, down or up, through the real client."""
    publish_to(monkeypatch, private_redis.url)


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
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=textured_lesion_image(**kwargs))
    return capture, capture.analyses.get()


def send_to_private_broker(env: dict[str, str], analysis_id: int) -> str:
    """Publish one more delivery of an analysis job, as the broker would redeliver it; returns the task id."""
    from celery import Celery

    # Not made the current app (Celery's default): lesions.queueing publishes through
    # celery.current_app, and every later test of the session would publish to this broker.
    client = Celery(broker=env["CELERY_BROKER_URL"], set_as_current=False)
    try:
        return client.send_task(ANALYZE_TASK, (analysis_id,), queue="gpu").id
    finally:
        client.close()


def test_worker_killed_mid_analysis_then_work_completes_exactly_once(lesion, worker_env, web_enqueues_to_private_redis,
                                                                     tmp_path):
    capture, analysis = new_capture(lesion)
    slow = start_worker(env={**worker_env, "LESIONTRACK_FAULT": "slow", "LESIONTRACK_FAULT_SECONDS": "60"},
                        name="slow", log_path=tmp_path / "slow.log", app="tests.support.fault_worker")
    wait_for_status(analysis, {"running"}, timeout=60)  # the upload's own job
    kill_hard(slow)  # kill -9 in the middle of the analysis
    assert analysis.status == "running" and analysis.attempts == 1
    healthy = start_worker(env=worker_env, name="healthy", log_path=tmp_path / "healthy.log")
    try:
        run_sweep(worker_env)
        wait_for_status(analysis, {"done", "failed"})
        assert analysis.status == "done", analysis.error
        assert analysis.attempts == 2
        assert Analysis.objects.filter(capture=capture).count() == 1
        # A second delivery of the same job changes nothing: the message really goes to the
        # worker again, and the test waits for that worker to report the task finished.
        finished = analysis.finished_at
        second = send_to_private_broker(worker_env, analysis.pk)
        wait_for_log(healthy, f"Task lesions.tasks.analyze_capture_task[{second}] succeeded", 60)
        analysis.refresh_from_db()
        assert analysis.status == "done" and analysis.finished_at == finished and analysis.attempts == 2
    finally:
        stop_process(healthy)


def test_image_that_always_kills_the_worker_fails_after_bounded_attempts(lesion, worker_env, private_redis,
                                                                          web_enqueues_to_private_redis, tmp_path):
    _, deadly = new_capture(lesion, size=(333, 240))
    env = {**worker_env, "LESIONTRACK_FAULT": "crash_on_marker", "LESIONTRACK_FAULT_WIDTH": "333"}
    crashes = 0
    for attempt in range(5):
        if attempt:  # the upload queued the first job; after a crash only the sweep sends another
            run_sweep(worker_env)
            deadly.refresh_from_db()
            if deadly.status == "failed":  # out of attempts: the sweep failed it instead of sending it again
                break
        worker = start_worker(env=env, name=f"crashy{attempt}", log_path=tmp_path / f"crash{attempt}.log",
                              app="tests.support.fault_worker")
        try:
            worker.wait(60)
            crashes += 1
        except subprocess.TimeoutExpired:
            stop_process(worker)
    assert deadly.status == "failed"
    assert "Gave up after 3 attempts" in deadly.error
    assert crashes == 3
    # Nothing was queued for a fourth attempt (the crashed deliveries themselves wait, unacknowledged,
    # outside the queue until the broker's visibility timeout, and find the analysis failed).
    assert private_redis.queue_length("gpu") == 0
    run_sweep(worker_env)  # a later sweep leaves a failed analysis alone
    deadly.refresh_from_db()
    assert deadly.status == "failed" and deadly.attempts == 3
    assert private_redis.queue_length("gpu") == 0


def test_jobs_survive_a_redis_restart(lesion, worker_env, private_redis, web_enqueues_to_private_redis, tmp_path):
    analyses = [new_capture(lesion)[1] for _ in range(3)]
    assert private_redis.queue_length("gpu") == 3  # three jobs queued in Redis by the uploads, no worker yet
    private_redis.stop()  # Redis keeps nothing on disk: the queued jobs are gone
    private_redis.start()
    assert private_redis.queue_length("gpu") == 0  # the jobs died with Redis
    worker = start_worker(env=worker_env, name="after-restart", log_path=tmp_path / "restart.log")
    try:
        # The worker is ready and its queue is empty: nothing can start these rows but the sweep.
        assert all(a.status == "queued" for a in Analysis.objects.all())
        run_sweep(worker_env)
        for analysis in analyses:
            assert wait_for_status(analysis, {"done", "failed"}).status == "done", analysis.error
    finally:
        stop_process(worker)


def test_transient_storage_error_is_retried_and_succeeds(lesion, worker_env, web_enqueues_to_private_redis, tmp_path):
    _, analysis = new_capture(lesion)
    env = {**worker_env, "LESIONTRACK_FAULT": "flaky_storage", "LESIONTRACK_FAULT_DIR": str(tmp_path)}
    worker = start_worker(env=env, name="flaky", log_path=tmp_path / "flaky.log", app="tests.support.fault_worker")
    try:
        assert wait_for_status(analysis, {"done", "failed"}).status == "done", analysis.error
        assert (tmp_path / f"failed-once-{os.path.basename(analysis.capture.image.name)}").exists()
        wait_for_log(worker, "Retry in", 5)
        assert "storage read failed" in worker.log_path.read_text()  # mapped by read_capture_bytes
        assert analysis.attempts == 1  # the transient failure gave its attempt back
    finally:
        stop_process(worker)


def test_corrupt_image_fails_with_reason_and_does_not_block_the_queue(lesion, worker_env, web_enqueues_to_private_redis,
                                                                       tmp_path, private_media):
    corrupt_capture, corrupt = new_capture(lesion)
    with open(os.path.join(private_media, corrupt_capture.image.name), "wb") as handle:
        handle.write(b"\xff\xd8\xff\xe0 not really a jpeg any more")
    _, good = new_capture(lesion)
    worker = start_worker(env=worker_env, name="corrupt", log_path=tmp_path / "corrupt.log")
    try:
        assert wait_for_status(corrupt, {"done", "failed"}).status == "failed"
        assert "cannot be decoded" in corrupt.error
        assert corrupt.attempts == 1  # no retry for a bad image
        assert wait_for_status(good, {"done", "failed"}).status == "done"
    finally:
        stop_process(worker)


def wait_for_log_after(proc, marker: str, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = proc.log_path.read_text(errors="replace")
        if marker in log and text in log[log.index(marker):]:
            return
        time.sleep(0.2)
    raise TimeoutError(f"no '{text}' after '{marker}':\n{proc.log_path.read_text()[-3000:]}")


def test_sweep_never_sends_a_just_finished_analysis_back_to_queued(lesion, worker_env, web_enqueues_to_private_redis,
                                                                   tmp_path):
    """#16: two worker processes on PostgreSQL, beat, and a real 3 s deadline. Worker A is still
    analysing when the sweep (on worker B) picks the row as stuck; the sweep then waits until
    A has finished before writing. The write must see the row is done and leave it alone."""
    require_service(using_postgres(), "PostgreSQL (DATABASE_URL=postgres://...)")
    procs = []
    try:
        procs.append(start_worker(env={**worker_env, "LESIONTRACK_FAULT": "slow", "LESIONTRACK_FAULT_SECONDS": "8"},
                                  name="analyst", queues="gpu", log_path=tmp_path / "analyst.log",
                                  app="tests.support.fault_worker"))
        procs.append(start_worker(env={**worker_env, "LESIONTRACK_FAULT": "sweep_race",
                                       "ANALYSIS_STUCK_AFTER_SECONDS": "3"},
                                  name="sweeper", queues="default", log_path=tmp_path / "sweeper.log",
                                  app="tests.support.fault_worker", ready_text=" ready."))
        procs.append(start_beat(env={**worker_env, "ANALYSIS_SWEEP_INTERVAL_SECONDS": "1"},
                                log_path=tmp_path / "beat.log", schedule_dir=tmp_path))
        analyst, sweeper, _beat = procs
        capture, analysis = new_capture(lesion)
        assert capture.analysis_enqueued is True
        wait_for_log(sweeper, "sweep picked ids=", 60)
        analysis.refresh_from_db()
        assert f"sweep picked ids=[{analysis.pk}]" in sweeper.log_path.read_text()
        wait_for_log_after(sweeper, "sweep writing", "requeue_stuck_analyses_task", 60)
        wait_for_log_after(sweeper, "sweep writing", "succeeded", 30)
        analysis.refresh_from_db()
        assert analysis.status == "done", analysis.status
        assert analysis.attempts == 1
        assert analyst.log_path.read_text().count("analysis done") == 1
    finally:
        for proc in reversed(procs):
            stop_process(proc)


def test_upload_while_the_broker_is_down_is_analysed_once_it_is_back(lesion, worker_env, private_redis,
                                                                     web_enqueues_to_private_redis, tmp_path):
    """The broker is really down during the upload (nothing patched out): the capture is saved,
    the row says it waits for the broker, and beat's sweep sends it once Redis is back,
    well before the stuck deadline (600 s). The missing thumbnail is made by the sweep too."""
    private_redis.stop()
    capture, analysis = new_capture(lesion)
    assert capture.analysis_enqueued is False
    analysis.refresh_from_db()
    assert analysis.status == "queued" and analysis.awaiting_broker
    private_redis.start()
    env = {**worker_env, "ANALYSIS_STUCK_AFTER_SECONDS": "600", "THUMBNAIL_STUCK_AFTER_SECONDS": "1",
           "ANALYSIS_SWEEP_INTERVAL_SECONDS": "1"}
    procs = []
    try:
        procs.append(start_worker(env=env, name="after-outage", log_path=tmp_path / "after-outage.log"))
        procs.append(start_beat(env=env, log_path=tmp_path / "beat.log", schedule_dir=tmp_path))
        assert wait_for_status(analysis, {"done", "failed", "not_analysable"}).status == "done", analysis.error
        assert not analysis.awaiting_broker and analysis.attempts == 1
        assert wait_for_thumbnail(capture, timeout=60), "the sweep did not make the missing thumbnail"
    finally:
        for proc in reversed(procs):
            stop_process(proc)
