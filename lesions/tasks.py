"""Celery tasks: thin, id-based, with explicit time limits. The logic lives in analysis."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init, worker_ready
from django.conf import settings
from django.db import InterfaceError, OperationalError

from lesions import analysis
from lesions.queueing import ANALYSIS_QUEUE
from lesions.worker import load_analyzer, worker_name

logger = logging.getLogger("lesions.tasks")


@worker_process_init.connect
def _load_models_in_child(**_kwargs) -> None:
    load_analyzer()


@worker_ready.connect
def _load_models_in_solo_worker(sender=None, **_kwargs) -> None:
    # The solo and threads pools have no child processes: load in the worker itself.
    pool = getattr(getattr(sender, "pool_cls", None), "__module__", "")
    if "prefork" not in pool and _serves_gpu_queue(sender):
        load_analyzer()


def _serves_gpu_queue(consumer_or_worker) -> bool:
    try:
        queues = consumer_or_worker.app.amqp.queues.consume_from
        return ANALYSIS_QUEUE in queues
    except AttributeError:
        return True


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=5,
             soft_time_limit=settings.ANALYSIS_SOFT_TIME_LIMIT, time_limit=settings.ANALYSIS_TIME_LIMIT)
def analyze_capture_task(self, analysis_id: int) -> None:
    try:
        analysis.run_analysis(analysis_id=analysis_id, analyzer=load_analyzer(), worker=worker_name())
    except analysis.BadImageError as exc:
        analysis.mark_failed(analysis_id, str(exc))
    except SoftTimeLimitExceeded:
        analysis.mark_failed(analysis_id, f"Analysis took longer than {settings.ANALYSIS_SOFT_TIME_LIMIT} s.")
    except (analysis.TransientAnalysisError, OperationalError, InterfaceError) as exc:
        # Storage or database trouble: retry with backoff (the row keeps its attempt count).
        _try_mark_queued(analysis_id, str(exc))
        if self.request.retries >= self.max_retries:
            analysis.mark_failed(analysis_id, f"Still failing after {self.max_retries} retries: {exc}")
            return
        raise self.retry(exc=exc, countdown=min(60, 2 ** self.request.retries)) from exc
    except Exception as exc:
        # An unexpected error in our own code or the model: record it, do not loop.
        logger.exception("analysis crashed analysis_id=%s", analysis_id)
        analysis.mark_failed(analysis_id, f"Analysis error: {type(exc).__name__}: {exc}")


def _try_mark_queued(analysis_id: int, reason: str) -> None:
    try:
        analysis.mark_queued_for_retry(analysis_id, reason)
    except (OperationalError, InterfaceError):
        logger.warning("database unavailable; analysis_id=%s stays running until the retry or the sweep",
                       analysis_id)


@shared_task(bind=True, acks_late=True, max_retries=3, soft_time_limit=30, time_limit=60)
def make_thumbnail_task(self, capture_id: int) -> None:
    try:
        analysis.make_thumbnail(capture_id)
    except (analysis.TransientAnalysisError, OperationalError, InterfaceError) as exc:
        raise self.retry(exc=exc, countdown=2 ** self.request.retries) from exc
    except analysis.BadImageError:
        logger.warning("no thumbnail for capture_id=%s: image missing", capture_id)


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def requeue_stuck_analyses_task() -> int:
    return len(analysis.requeue_stuck_analyses())
