"""Worker-process state: the models, loaded once per process at start.

Only worker processes import this module's loader; the web process never imports TensorFlow.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import TYPE_CHECKING

from celery.signals import task_postrun, task_prerun
from django.conf import settings

from lesions.batching import BatchingAnalyzer
from lesions.queueing import ANALYZE_TASK

if TYPE_CHECKING:
    from ml.inference import Analyzer

logger = logging.getLogger("lesions.worker")
_analyzer: Analyzer | BatchingAnalyzer | None = None
_loading = threading.Lock()  # the threads pool may ask from several threads at once


def load_analyzer() -> Analyzer | BatchingAnalyzer:
    """The process's models. With ANALYSIS_BATCH_SIZE > 1 (a threads-pool worker running several
    analyses at once) they are wrapped so that concurrent analyses share batched model calls."""
    global _analyzer
    with _loading:
        if _analyzer is None:
            # The one way from the web side's code into TensorFlow, taken in worker processes only
            # (import-linter's contracts in pyproject.toml keep it so).
            from ml.inference import Analyzer, ModelFileMismatch  # noqa: PLC0415

            try:
                analyzer = Analyzer(settings.ML_MODELS_DIR,
                                    mixed_precision=os.environ.get("ML_MIXED_PRECISION", "") == "1")
            except ModelFileMismatch as exc:
                logger.critical("refusing to load the models in %s: %s", settings.ML_MODELS_DIR, exc)
                raise
            logger.info("models loaded version=%s device=%s runtime=%s segmenter=%s classifier=%s pid=%s batch=%s",
                        analyzer.version, analyzer.device, analyzer.runtime, *analyzer.names, os.getpid(),
                        settings.ANALYSIS_BATCH_SIZE)
            if settings.ANALYSIS_BATCH_SIZE > 1:
                _analyzer = BatchingAnalyzer(analyzer, max_batch=settings.ANALYSIS_BATCH_SIZE,
                                             max_wait_s=settings.ANALYSIS_BATCH_WAIT_MS / 1000,
                                             time_limit_s=settings.ANALYSIS_SOFT_TIME_LIMIT)
            else:
                _analyzer = analyzer
    return _analyzer


@task_prerun.connect
def _analysis_started(sender=None, **_kwargs) -> None:
    if getattr(sender, "name", None) == ANALYZE_TASK and settings.ANALYSIS_BATCH_SIZE > 1:
        # Loaded here if this is the process's first analysis (a worker whose queues do not
        # include the analysis queue loads the models lazily): an analysis that started before
        # the models were loaded must still be counted, or the batcher would not wait for it.
        try:
            analyzer = load_analyzer()
        except Exception:  # noqa: BLE001 -- the task's own load reports it, and fails the analysis
            return
        analyzer.task_started()


@task_postrun.connect
def _analysis_finished(sender=None, **_kwargs) -> None:
    if getattr(sender, "name", None) == ANALYZE_TASK and hasattr(_analyzer, "task_finished"):
        _analyzer.task_finished()


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
