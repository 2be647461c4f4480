"""Celery tasks: thin, id-based, with explicit time limits. The logic lives in analysis."""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init, worker_ready
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from lesions import analysis, orphans
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


def retry_countdown(retries: int) -> int:
    """Capped exponential backoff: 1, 2, 4, 8, 16, then every RETRY_BACKOFF_CAP_SECONDS. With
    TRANSIENT_MAX_RETRIES retries a task outlasts an outage of about 19 minutes, and once the
    database or storage is back the next try comes within the cap (30 s)."""
    return min(settings.RETRY_BACKOFF_CAP_SECONDS, 2 ** retries)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=settings.TRANSIENT_MAX_RETRIES,
             soft_time_limit=settings.ANALYSIS_SOFT_TIME_LIMIT, time_limit=settings.ANALYSIS_TIME_LIMIT)
def analyze_capture_task(self, analysis_id: int) -> None:
    try:
        analysis.run_analysis(analysis_id=analysis_id, analyzer=load_analyzer(), worker=worker_name())
    except analysis.BadImageError as exc:
        _try_mark_failed(analysis_id, str(exc))
    except SoftTimeLimitExceeded:
        _try_mark_failed(analysis_id, f"Analysis took longer than {settings.ANALYSIS_SOFT_TIME_LIMIT} s.")
    except (analysis.TransientAnalysisError, OperationalError, InterfaceError) as exc:
        # Storage or database trouble: retry with a capped backoff (the row keeps its attempt count).
        _try_mark_queued(analysis_id, str(exc))
        if self.request.retries >= self.max_retries:
            _try_mark_failed(analysis_id, f"Still failing after {self.max_retries} retries: {exc}")
            return
        raise self.retry(exc=exc, countdown=retry_countdown(self.request.retries)) from exc
    except Exception as exc:
        # An unexpected error in our own code or the model: record it, do not loop.
        logger.exception("analysis crashed analysis_id=%s", analysis_id)
        _try_mark_failed(analysis_id, f"Analysis error: {type(exc).__name__}: {exc}")


def _try_mark_queued(analysis_id: int, reason: str) -> None:
    if not _write_on_a_working_connection(analysis.mark_queued_for_retry, analysis_id, reason):
        logger.warning("database unavailable; analysis_id=%s stays running until the retry or the sweep",
                       analysis_id)


def _try_mark_failed(analysis_id: int, reason: str) -> None:
    if not _write_on_a_working_connection(analysis.mark_failed, analysis_id, reason):
        # The database is down as well: the row stays queued/running and the sweep settles it.
        logger.warning("database unavailable; analysis_id=%s not marked failed (%s); the sweep will take it",
                       analysis_id, reason)


def _write_on_a_working_connection(write: Callable[[int, str], None], analysis_id: int, reason: str) -> bool:
    """The write, and once more when it fails: both writes check the row's status first, so a
    second one never does anything twice. A connection that dropped during the analysis (a
    database restart, a failover, a network cut) fails the first write, and stays broken until
    closed, which Django does only when the next task starts (or, inside the write's own
    transaction, by opening a new one as it leaves). Without the second write the row would keep
    its spent attempt (and, for a retry, its running status); a timed-out image would be run
    again by the sweep. Not inside a transaction (an eager task runs in its caller's): that
    connection is the caller's."""
    for second in (False, True):
        try:
            write(analysis_id, reason)
            return True
        except (OperationalError, InterfaceError):
            if second or connection.in_atomic_block:
                return False
            connection.close_if_unusable_or_obsolete()
    return False


@shared_task(bind=True, acks_late=True, max_retries=settings.TRANSIENT_MAX_RETRIES, soft_time_limit=30,
             time_limit=60)
def make_thumbnail_task(self, capture_id: int) -> None:
    try:
        analysis.make_thumbnail(capture_id)
    except (analysis.TransientAnalysisError, OperationalError, InterfaceError) as exc:
        if self.request.retries >= self.max_retries:
            logger.warning("thumbnail gave up capture_id=%s (%s); the sweep will enqueue it again", capture_id, exc)
            return
        raise self.retry(exc=exc, countdown=retry_countdown(self.request.retries)) from exc
    except analysis.BadImageError as exc:
        logger.warning("no thumbnail for capture_id=%s: %s", capture_id, exc)


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def requeue_stuck_analyses_task() -> int:
    """The beat sweep: stranded analyses and missing thumbnails."""
    return len(analysis.requeue_stuck_analyses()) + len(analysis.requeue_missing_thumbnails())


@shared_task(acks_late=True, soft_time_limit=600, time_limit=660)
def remove_orphan_files_task() -> int:
    return len(orphans.remove_orphan_files())
