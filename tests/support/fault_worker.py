"""A Celery app for fault tests: the real app and tasks with one fault injected, chosen by
LESIONTRACK_FAULT. Used as ``celery -A tests.support.fault_worker worker``; never in production.

- ``slow``: each analysis sleeps LESIONTRACK_FAULT_SECONDS first (time to kill the worker mid-way)
- ``crash_on_marker``: the process dies (os._exit) on images LESIONTRACK_FAULT_WIDTH pixels wide
- ``flaky_storage``: the first read of each capture's image fails with an OSError
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
django.setup()

from config.celery import app  # noqa: E402
from lesions import analysis, tasks  # noqa: E402
from lesions.worker import load_analyzer as real_load_analyzer  # noqa: E402

FAULT = os.environ.get("LESIONTRACK_FAULT", "")


class FaultyAnalyzer:
    def __init__(self, analyzer) -> None:
        self._analyzer = analyzer

    def __getattr__(self, name):
        return getattr(self._analyzer, name)

    def analyze(self, image, mm_per_pixel=None):
        if FAULT == "slow":
            time.sleep(float(os.environ.get("LESIONTRACK_FAULT_SECONDS", "30")))
        if FAULT == "crash_on_marker" and image.shape[1] == int(os.environ["LESIONTRACK_FAULT_WIDTH"]):
            os._exit(137)
        return self._analyzer.analyze(image, mm_per_pixel)


def faulty_load_analyzer():
    return FaultyAnalyzer(real_load_analyzer())


tasks.load_analyzer = faulty_load_analyzer

if FAULT == "flaky_storage":
    real_read = analysis.read_capture_bytes
    marker_dir = Path(os.environ["LESIONTRACK_FAULT_DIR"])

    def flaky_read(capture):
        marker = marker_dir / f"failed-once-{capture.pk}"
        if not marker.exists():
            marker.touch()
            try:
                raise OSError("simulated storage outage")
            except OSError as exc:
                raise analysis.TransientAnalysisError(f"storage read failed: {exc}") from exc
        return real_read(capture)

    analysis.read_capture_bytes = flaky_read

__all__ = ["app"]
