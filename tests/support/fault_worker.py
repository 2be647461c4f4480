"""A Celery app for fault tests: the real app and tasks with one fault injected, chosen by
LESIONTRACK_FAULT. Used as ``celery -A tests.support.fault_worker worker``; never in production.

- ``slow``: each analysis sleeps LESIONTRACK_FAULT_SECONDS first (time to kill the worker mid-way)
- ``crash_on_marker``: the process dies (os._exit) on images LESIONTRACK_FAULT_WIDTH pixels wide
- ``flaky_storage``: the storage's first open of each capture image fails with an OSError
  (the real read_capture_bytes maps it to a transient error)
- ``sweep_race``: the sweep, having picked its stuck rows, waits until none of them is still
  running (a worker finished it) before it writes: the race between a finishing worker and
  the sweep, made certain instead of likely
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
    from django.core.files.storage import storages

    marker_dir = Path(os.environ["LESIONTRACK_FAULT_DIR"])
    # The configured storage itself (default_storage is a lazy wrapper that may not be set up yet).
    storage_class = type(storages["default"])
    real_open = storage_class.open

    def flaky_open(self, name, mode="rb"):
        marker = marker_dir / f"failed-once-{Path(name).name}"
        if name.startswith("captures/") and not marker.exists():
            marker.touch()
            raise OSError(5, "Input/output error (simulated storage outage)")
        return real_open(self, name, mode)

    storage_class.open = flaky_open

if FAULT == "sweep_race":
    from lesions.models import Analysis

    real_stuck_ids = analysis.stuck_analysis_ids

    def stuck_ids_then_wait(deadline):
        ids = real_stuck_ids(deadline)
        if ids:
            print(f"sweep picked ids={ids}; waiting for them to leave running", flush=True)
            until = time.monotonic() + float(os.environ.get("LESIONTRACK_FAULT_SECONDS", "120"))
            while (Analysis.objects.filter(pk__in=ids, status=Analysis.Status.RUNNING).exists()
                   and time.monotonic() < until):
                time.sleep(0.1)
            print(f"sweep writing ids={ids}", flush=True)
        return ids

    analysis.stuck_analysis_ids = stuck_ids_then_wait

__all__ = ["app"]
