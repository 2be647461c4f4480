"""Pipeline benchmark (not a test): seed N captures of real images, run them through 1 and then
2 real worker processes on the configured broker and database, and report end-to-end latency,
throughput and where the time goes. Prints a table and writes JSON."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from bench.report import machine_description, summary
from clinic.models import Clinic, Patient
from lesions import services
from lesions.images import encode_png
from lesions.models import Analysis, Lesion
from ml.synthetic import synthetic_capture

SHARED_IMAGES = Path(settings.BASE_DIR).parent / "shared" / "data" / "lesions-dev" / "images"
STAGES = ["queue_wait_s", "image_load_s", "decode_s", "segmentation_s", "classification_s", "features_s",
          "rendering_s", "storage_write_s", "total_s"]


class Command(BaseCommand):
    help = "Measure upload-to-done latency and throughput with 1 and 2 worker processes."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--captures", type=int, default=24)
        parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
        parser.add_argument("--out", default="bench-results/pipeline.json")
        parser.add_argument("--timeout", type=float, default=900)

    def handle(self, *args, captures: int, workers: list[int], out: str, timeout: float, **options) -> None:
        if settings.CELERY_BROKER_URL.startswith("filesystem://"):
            self.stderr.write("note: the embedded filesystem broker; set CELERY_BROKER_URL=redis://… for production numbers")
        images = self._images(captures)
        clinic, _ = Clinic.objects.get_or_create(name="Pipeline Benchmark Clinic")
        patient, _ = Patient.objects.get_or_create(clinic=clinic, identifier="PIPELINE-BENCH",
                                                   defaults={"name": "Benchmark Patient"})
        results = {"machine": machine_description(), "broker": settings.CELERY_BROKER_URL.split("://")[0],
                   "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
                   "captures": captures, "runs": {}}
        for count in workers:
            lesion = Lesion.objects.create(patient=patient, label=f"bench {count} workers {timezone.now():%H%M%S}")
            procs = [self._start_worker(i) for i in range(count)]
            try:
                self._wait_ready(procs)
                started = time.perf_counter()
                created = {}
                for data in images:
                    capture = services.capture_create(request=None, user=None, lesion=lesion, data=data)
                    created[capture.analyses.get().pk] = time.perf_counter()
                done = self._wait_done(list(created), timeout)
                elapsed = time.perf_counter() - started
            finally:
                for proc in procs:
                    proc.send_signal(signal.SIGTERM)
                for proc in procs:
                    proc.wait(30)
            analyses = list(Analysis.objects.filter(pk__in=created))
            latencies = [(a.finished_at - a.queued_at).total_seconds() for a in analyses if a.finished_at]
            results["runs"][str(count)] = {
                "workers": count, "done": done, "failed": sum(a.is_failed for a in analyses),
                "elapsed_s": elapsed, "throughput_per_min": done / elapsed * 60,
                "latency_s": summary(latencies),
                "stages_s": {stage: summary([a.timings[stage] for a in analyses if a.timings.get(stage) is not None])
                             for stage in STAGES},
            }
            services.delete_files_of_patient(patient)
            lesion.delete()
        self._print(results)
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(results, indent=2))
        self.stdout.write(f"written {out}")

    def _images(self, count: int) -> list[bytes]:
        sources = sorted(SHARED_IMAGES.glob("*.jpg"))[:count] if SHARED_IMAGES.is_dir() else []
        if not sources:
            return [encode_png(synthetic_capture(i)) for i in range(count)]
        return [p.read_bytes() for p in sources]

    def _start_worker(self, index: int) -> subprocess.Popen:
        log = open(Path(settings.VAR_DIR) / f"bench-worker-{index}.log", "w")
        return subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "gpu,default", "-P", "solo",
                                 "-n", f"bench{index}@%h", "-l", "INFO", "--without-gossip", "--without-mingle"],
                                env={**os.environ, "ML_THREADS": os.environ.get("ML_THREADS", "1")},
                                stdout=log, stderr=subprocess.STDOUT)

    def _wait_ready(self, procs: list[subprocess.Popen]) -> None:
        deadline = time.monotonic() + 180
        for i, proc in enumerate(procs):
            path = Path(settings.VAR_DIR) / f"bench-worker-{i}.log"
            while "models loaded" not in path.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(path.read_text()[-2000:])
                time.sleep(0.2)

    def _wait_done(self, ids: list[int], timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            finished = Analysis.objects.filter(pk__in=ids, status__in=Analysis.FINISHED).count()
            if finished == len(ids):
                return Analysis.objects.filter(pk__in=ids, status=Analysis.Status.DONE).count()
            time.sleep(0.2)
        return Analysis.objects.filter(pk__in=ids, status=Analysis.Status.DONE).count()

    def _print(self, results: dict) -> None:
        m = results["machine"]
        self.stdout.write(f"Pipeline on {m['cpu']} ({m['cores']} cores), broker {results['broker']}, "
                          f"database {results['database']}, {results['captures']} captures")
        self.stdout.write(f"{'workers':>8}{'done':>6}{'per min':>9}{'median s':>10}{'p95 s':>8}")
        for run in results["runs"].values():
            self.stdout.write(f"{run['workers']:>8}{run['done']:>6}{run['throughput_per_min']:>9.1f}"
                              f"{run['latency_s']['median']:>10.2f}{run['latency_s']['p95']:>8.2f}")
        self.stdout.write(f"\n{'stage (median / p95 s)':<26}" + "".join(f"{w + ' w':>16}" for w in results["runs"]))
        for stage in STAGES:
            cells = "".join(f"{r['stages_s'][stage]['median']:>8.3f}/{r['stages_s'][stage]['p95']:<7.3f}"
                            for r in results["runs"].values())
            self.stdout.write(f"{stage:<26}{cells}")
