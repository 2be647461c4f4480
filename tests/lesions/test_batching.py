"""Batched model calls (lesions/batching.py): concurrent analyses of one worker process share one
segmentation + classification call; each analysis keeps its own task, claim and failure handling."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pytest
from celery.exceptions import SoftTimeLimitExceeded

from lesions.batching import BatchingAnalyzer
from ml.inference import ImageAnalysis, ModelOutputs


class FakeAnalyzer:
    """Records the batch sizes it was called with; the per-image work echoes the image's marker."""

    manifest = {"version": "fake"}

    def __init__(self, delay: float = 0.0, error: Exception | None = None) -> None:
        self.calls: list[int] = []
        self.threads: set[str] = set()
        self.delay, self.error = delay, error

    def model_batch(self, images):
        self.calls.append(len(images))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if self.error:
            raise self.error
        return ModelOutputs([img[..., 0] for img in images], [float(img[0, 0, 0]) for img in images],
                            [np.zeros((2, 2)) for _ in images], [(0, 0, 4, 4) for _ in images],
                            {"segmentation_s": 0.0, "batch_size": len(images)})

    def finish_image(self, image, mask, probability, cam, box, mm_per_pixel=None, *, model_timings=None,
                     embedding=None):
        return ImageAnalysis(mask=mask, probability=probability, overlay=image, heatmap=None, features={},
                             embedding=embedding, timings=dict(model_timings or {}))


def run_concurrently(batcher: BatchingAnalyzer, count: int) -> tuple[dict[int, object], list[threading.Thread]]:
    results: dict[int, object] = {}

    def one(i: int) -> None:
        batcher.task_started()
        try:
            results[i] = batcher.analyze(np.full((4, 4, 3), i, np.uint8))
        except BaseException as exc:  # noqa: BLE001 - the test inspects what each caller got
            results[i] = exc
        finally:
            batcher.task_finished()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results, threads


def test_concurrent_analyses_share_model_calls_and_each_gets_its_own_result():
    fake = FakeAnalyzer(delay=0.05)
    batcher = BatchingAnalyzer(fake, max_batch=4, max_wait_s=1.0, time_limit_s=10)
    results, _ = run_concurrently(batcher, 8)
    assert sorted(results) == list(range(8))
    for i, result in results.items():
        assert isinstance(result, ImageAnalysis)
        assert result.probability == i  # its own image's answer, not a neighbour's
    assert sum(fake.calls) == 8 and max(fake.calls) <= 4
    assert len(fake.calls) < 8  # batched: fewer model calls than analyses
    assert fake.threads == {"model-batcher"}  # the models are only ever called from one thread


def test_a_lone_analysis_does_not_wait_for_company():
    fake = FakeAnalyzer()
    batcher = BatchingAnalyzer(fake, max_batch=8, max_wait_s=5.0, time_limit_s=10)
    started = time.monotonic()
    results, _ = run_concurrently(batcher, 1)
    assert time.monotonic() - started < 1.0  # nothing else in flight: no 5 s wait
    assert fake.calls == [1] and isinstance(results[0], ImageAnalysis)


def test_a_model_error_reaches_every_analysis_of_the_batch():
    fake = FakeAnalyzer(delay=0.05, error=RuntimeError("model exploded"))
    batcher = BatchingAnalyzer(fake, max_batch=4, max_wait_s=1.0, time_limit_s=10)
    results, _ = run_concurrently(batcher, 3)
    assert all(isinstance(r, RuntimeError) and "exploded" in str(r) for r in results.values())


def test_models_slower_than_the_time_limit_end_the_analysis_as_a_soft_time_limit():
    fake = FakeAnalyzer(delay=1.5)
    batcher = BatchingAnalyzer(fake, max_batch=2, max_wait_s=0.0, time_limit_s=0.3)
    results, _ = run_concurrently(batcher, 1)
    assert isinstance(results[0], SoftTimeLimitExceeded)


def test_an_analysis_that_starts_before_the_models_are_loaded_is_counted_in_flight(settings, monkeypatch):
    """A worker whose queues do not include the analysis queue loads its models at its first
    analysis: the tasks that start meanwhile are counted all the same, so that the batcher waits
    for their images instead of running the first one alone."""
    from types import SimpleNamespace

    from celery.signals import task_postrun, task_prerun

    from lesions import worker
    from lesions.queueing import ANALYZE_TASK

    settings.ANALYSIS_BATCH_SIZE = 4
    batcher = BatchingAnalyzer(FakeAnalyzer(), max_batch=4, max_wait_s=0.0, time_limit_s=1.0)
    monkeypatch.setattr(worker, "_analyzer", None)  # not loaded yet

    def load_on_first_call():
        worker._analyzer = batcher
        return batcher

    monkeypatch.setattr(worker, "load_analyzer", load_on_first_call)
    class task:  # noqa: N801 - stands for the task object Celery sends with the signals
        name = ANALYZE_TASK
        # Eager, so that config.celery's connection upkeep (a worker's) leaves this test's database alone.
        request = SimpleNamespace(is_eager=True)

    for _ in range(3):
        task_prerun.send(sender=task)
    assert batcher._in_flight == 3
    task_postrun.send(sender=task)
    assert batcher._in_flight == 2


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_threads_pool_worker_analyses_queued_captures_in_batches(media_root, lesion, tmp_path, monkeypatch):
    from celery import current_app
    from django.conf import settings

    from lesions import services
    from lesions.models import Analysis
    from lesions.queueing import ANALYZE_TASK
    from tests.conftest import worker_environment
    from tests.factories import lesion_image
    from tests.support.processes import start_worker, stop_process

    if settings.STORAGE_BACKEND != "local":
        pytest.skip("this worker serves local storage")
    # Queued before the worker starts, so that it finds several waiting at once; on a queue of this
    # run's own, so that no other worker (the shared e2e worker serves "gpu") takes them, and
    # nothing that an earlier or a concurrent run on the same broker left or sent is in it (its
    # analysis ids would be this run's too: each run's test database numbers its rows from 1).
    monkeypatch.setattr(services, "enqueue_analysis_or_flag", lambda analysis_id: True)
    captures = [services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image(radius=20 + i))
                for i in range(4)]
    queue = f"gpu-batch-test-{uuid.uuid4().hex}"
    for capture in captures:
        current_app.send_task(ANALYZE_TASK, (capture.analyses.get().pk,), queue=queue)
    env = {**worker_environment(media_root), "ANALYSIS_BATCH_SIZE": "4", "ANALYSIS_BATCH_WAIT_MS": "3000"}
    worker = start_worker(env=env, name="batch", log_path=tmp_path / "worker.log", app="config", queues=queue,
                          pool="threads", concurrency=4)
    try:
        deadline = time.monotonic() + 180
        ids = [c.analyses.get().pk for c in captures]
        while time.monotonic() < deadline:
            if Analysis.objects.filter(pk__in=ids, status__in=["done", "failed"]).count() == len(ids):
                break
            time.sleep(0.3)
    finally:
        stop_process(worker)
    analyses = list(Analysis.objects.filter(pk__in=ids))
    seen = [(a.pk, a.status, a.attempts, a.worker, a.error) for a in analyses]
    log = (tmp_path / "worker.log").read_text(errors="replace")[-4000:]
    assert [a.status for a in analyses] == ["done"] * 4, (seen, log)
    assert all(a.attempts == 1 for a in analyses), (seen, log)  # one claim each: none ran twice
    assert max(a.timings["batch_size"] for a in analyses) > 1
    for a in analyses:
        assert {"asymmetry", "border", "colours", "diameter"} <= set(a.features) and a.mask.name
