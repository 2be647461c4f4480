"""Worker-process state: the models, loaded once per process at start.

Only worker processes import this module's loader; the web process never imports TensorFlow.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from ml.inference import Analyzer

logger = logging.getLogger("lesions.worker")
_analyzer: Analyzer | None = None


def load_analyzer() -> Analyzer:
    global _analyzer
    if _analyzer is None:
        # The one way from the web side's code into TensorFlow, taken in worker processes only
        # (import-linter's contracts in pyproject.toml keep it so).
        from ml.inference import Analyzer, ModelFileMismatch  # noqa: PLC0415

        try:
            _analyzer = Analyzer(settings.ML_MODELS_DIR,
                                 mixed_precision=os.environ.get("ML_MIXED_PRECISION", "") == "1")
        except ModelFileMismatch as exc:
            logger.critical("refusing to load the models in %s: %s", settings.ML_MODELS_DIR, exc)
            raise
        logger.info("models loaded version=%s device=%s segmenter=%s classifier=%s pid=%s",
                    _analyzer.version, _analyzer.device, *_analyzer.names, os.getpid())
    return _analyzer


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
