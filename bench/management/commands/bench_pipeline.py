"""Pipeline benchmark (not a test): N captures of real images uploaded at once (a burst), run
through real worker processes on the configured broker and database in several set-ups (one and
two solo workers, one analysis at a time; two threads-pool workers with batched model calls),
reporting end-to-end latency, throughput, batch sizes and where the time goes. Prints a table and
writes JSON."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from bench.report import machine_description, summary
from bench.seeding import source_images
from clinic.models import Clinic, Patient
from lesions import services
from lesions.models import Analysis, Lesion

DEFAULT_DATA = Path(settings.BASE_DIR).parent / "shared" / "data" / "lesions-dev"
# The poll for a burst's end is an ORM count (about 0.6 ms, mostly this process's CPU): every 50 ms it
# takes about 1 % of a core from the workers and adds 25 ms per burst on average (0.2 s added 0.1 s,
# about 4 % of a 24-capture burst).
POLL_S = 0.05
STAGES = ["queue_wait_s", "image_load_s", "decode_s", "segmentation_s", "classification_s", "features_s",
          "rendering_s", "findings_s", "storage_write_s", "total_s"]


class Command(BaseCommand):
    help = "Measure upload-to-done latency and throughput with 1 and 2 worker processes."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--captures", type=int, default=24, help="uploads per burst")
        parser.add_argument("--bursts", type=int, default=1, help="bursts per set-up (throughput over all)")
        parser.add_argument("--setups", nargs="+", default=["1xsolo", "2xsolo", "2xbatch8"],
                            help="WORKERSx(solo|batchN): solo = one analysis at a time; batchN = threads pool, "
                                 "ANALYSIS_BATCH_SIZE=N")
        parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                            help="dataset folder with images/*.jpg (default ../shared/data/lesions-dev); "
                                 "synthetic images when absent")
        parser.add_argument("--out", default="bench-results/pipeline.json")
        parser.add_argument("--timeout", type=float, default=900)

    def handle(self, *args, captures: int, bursts: int, setups: list[str], data: Path, out: str, timeout: float,
               **options) -> None:
        if settings.CELERY_BROKER_URL.startswith("filesystem://"):
            self.stderr.write("note: the embedded filesystem broker; set CELERY_BROKER_URL=redis://… for production numbers")
        images = self._images(data, captures)
        clinic, _ = Clinic.objects.get_or_create(name="Pipeline Benchmark Clinic")
        patient, _ = Patient.objects.get_or_create(clinic=clinic, identifier="PIPELINE-BENCH",
                                                   defaults={"name": "Benchmark Patient"})
        results = {"machine": machine_description(), "broker": settings.CELERY_BROKER_URL.split("://")[0],
                   "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
                   "captures": captures, "bursts": bursts, "runs": {}}
        for setup in setups:
            count, mode = setup.split("x", 1)
            count = int(count)
            batch = int(mode[len("batch"):]) if mode.startswith("batch") else 1
            lesion = Lesion.objects.create(patient=patient, label=f"bench {setup} {timezone.now():%H%M%S}")
            procs = [self._start_worker(i, batch) for i in range(count)]
            created: dict[int, float] = {}
            try:
                self._wait_ready(procs)
                started = time.perf_counter()
                for _ in range(bursts):
                    burst = []
                    for data_bytes in images:
                        capture = services.capture_create(request=None, user=None, lesion=lesion, data=data_bytes)
                        burst.append(capture.analyses.get().pk)
                    self._wait_done(burst, timeout)
                    created.update(dict.fromkeys(burst, 0.0))
                done = Analysis.objects.filter(pk__in=created, status="done").count()
                elapsed = time.perf_counter() - started
            finally:
                for proc in procs:
                    proc.send_signal(signal.SIGTERM)
                for proc in procs:
                    proc.wait(60)
            analyses = list(Analysis.objects.filter(pk__in=created))
            latencies = [(a.finished_at - a.queued_at).total_seconds() for a in analyses if a.finished_at]
            results["runs"][setup] = {
                "setup": setup, "workers": count, "batch": batch, "expected": captures * bursts, "done": done,
                "failed": sum(a.is_failed for a in analyses),
                "elapsed_s": elapsed, "throughput_per_min": done / elapsed * 60,
                "latency_s": summary(latencies),
                "batch_sizes": summary([a.timings.get("batch_size", 1) for a in analyses]),
                "stages_s": {stage: summary([a.timings[stage] for a in analyses if a.timings.get(stage) is not None])
                             for stage in STAGES},
            }
            services.delete_files_of_patient(patient)
            lesion.delete()
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            Path(out).write_text(json.dumps(results, indent=2))  # each set-up's numbers kept as they come
        self._print(results)
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(results, indent=2))
        self.stdout.write(f"written {out}")
        failed = {k: r["failed"] for k, r in results["runs"].items() if r["failed"] or r["done"] < r["expected"]}
        if failed:
            raise CommandError(f"analyses failed or unfinished: {failed}")

    def _images(self, data: Path, count: int) -> list[bytes]:
        if not (data / "images").is_dir():
            self.stderr.write(f"note: no images under {data}; synthetic images")
        return source_images(data, count)

    def _start_worker(self, index: int, batch: int) -> subprocess.Popen:
        log = open(Path(settings.VAR_DIR) / f"bench-worker-{index}.log", "w")
        pool = ["-P", "threads", "-c", str(batch)] if batch > 1 else ["-P", "solo"]
        return subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "gpu,default", *pool,
                                 "-n", f"bench{index}@%h", "-l", "INFO", "--without-gossip", "--without-mingle"],
                                env={**os.environ, "ML_THREADS": os.environ.get("ML_THREADS", "1"),
                                     "ANALYSIS_BATCH_SIZE": str(batch)},
                                stdout=log, stderr=subprocess.STDOUT)

    def _wait_ready(self, procs: list[subprocess.Popen]) -> None:
        deadline = time.monotonic() + 600  # loading TensorFlow on a busy machine can take minutes
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
            time.sleep(POLL_S)  # the next burst starts, and the elapsed time ends, when this one is seen done
        return Analysis.objects.filter(pk__in=ids, status=Analysis.Status.DONE).count()

    def _print(self, results: dict) -> None:
        m = results["machine"]
        self.stdout.write(f"Pipeline on {m['cpu']} ({m['cores']} cores), broker {results['broker']}, "
                          f"database {results['database']}, {results['captures']} captures")
        self.stdout.write(f"{'set-up':>10}{'done':>6}{'failed':>7}{'per min':>9}{'median s':>10}{'p95 s':>8}"
                          f"{'batch':>7}")
        for run in results["runs"].values():
            self.stdout.write(f"{run['setup']:>10}{run['done']:>6}{run['failed']:>7}{run['throughput_per_min']:>9.1f}"
                              f"{run['latency_s']['median']:>10.2f}{run['latency_s']['p95']:>8.2f}"
                              f"{run['batch_sizes']['median']:>7.1f}")
        self.stdout.write(f"\n{'stage (median / p95 s)':<26}" + "".join(f"{w + ' w':>16}" for w in results["runs"]))
        for stage in STAGES:
            cells = "".join(f"{r['stages_s'][stage]['median']:>8.3f}/{r['stages_s'][stage]['p95']:<7.3f}"
                            for r in results["runs"].values())
            self.stdout.write(f"{stage:<26}{cells}")
