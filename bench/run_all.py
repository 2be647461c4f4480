"""`make bench`: the inference, pipeline and web benchmarks, then one JSON and one Markdown
summary carrying the machine's description, so numbers from different machines never mix.

The pipeline and web benchmarks need PostgreSQL and Redis (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/lesiontrack_bench, created if missing; CELERY_BROKER_URL,
default redis://127.0.0.1:6379/14). BENCH_SCALE scales the seeded clinic (1.0 = 20,000 patients).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg2

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench-results"


def run(cmd: list[str], env: dict[str, str]) -> None:
    print(f"\n$ {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, cwd=REPO, env=env, check=True)


def ensure_database(url: str) -> None:
    name = url.rsplit("/", 1)[-1]
    admin = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()


def main() -> int:
    sys.path.insert(0, str(REPO))
    # Run as a script (`python bench/run_all.py`): the repository joins sys.path only here.
    from bench.report import machine_description  # noqa: PLC0415

    OUT.mkdir(exist_ok=True)
    scale = float(os.environ.get("BENCH_SCALE", "1.0"))
    db_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lesiontrack_bench")
    env = {**os.environ, "DATABASE_URL": db_url,
           "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/14"),
           "DJANGO_SETTINGS_MODULE": "config.settings.base"}
    py = sys.executable
    started = time.time()
    run([py, "-m", "ml", "bench-inference", "--out", str(OUT / "inference.json")], env)
    ensure_database(db_url)
    run([py, "manage.py", "migrate", "--noinput", "-v", "0"], env)
    from_scratch = subprocess.run([py, "manage.py", "shell", "-c",
                                   "from clinic.models import Patient; print(Patient.objects.count())"],
                                  cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout.strip()
    if int(from_scratch.splitlines()[-1]) < int(20_000 * scale):
        run([py, "manage.py", "seed_large_clinic", "--patients", str(int(20_000 * scale)),
             "--lesions", str(int(60_000 * scale)), "--captures", str(int(200_000 * scale))], env)
    run([py, "manage.py", "bench_pipeline", "--out", str(OUT / "pipeline.json")], env)
    run([py, "manage.py", "bench_web", "--out", str(OUT / "web.json")], env)
    run([py, "bench/similar_search.py", "--out", str(OUT / "similar.json")], env)
    combined = {"machine": machine_description(), "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                "wall_s": time.time() - started}
    for name in ("inference", "pipeline", "web", "similar"):
        combined[name] = json.loads((OUT / f"{name}.json").read_text())
    (OUT / "summary.json").write_text(json.dumps(combined, indent=2))
    (OUT / "summary.md").write_text(markdown(combined))
    print(f"\nwritten {OUT / 'summary.json'} and {OUT / 'summary.md'}")
    return 0


def markdown(c: dict) -> str:
    m = c["machine"]
    lines = [f"# LesionTrack benchmarks — {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB ({m['host']})",
             f"Finished {c['finished']}.", "", "## Inference (per image, ms)", "",
             "| batch | stage | median | p95 |", "|---|---|---|---|"]
    for batch, stages in c["inference"]["batches"].items():
        for stage, s in stages.items():
            lines.append(f"| {batch} | {stage} | {s['median_ms']:.1f} | {s['p95_ms']:.1f} |")
    lines += ["", "## Pipeline", "", "| workers | analyses/min | latency median s | p95 s |", "|---|---|---|---|"]
    for run_ in c["pipeline"]["runs"].values():
        lines.append(f"| {run_['workers']} | {run_['throughput_per_min']:.1f} | {run_['latency_s']['median']:.2f} | "
                     f"{run_['latency_s']['p95']:.2f} |")
    lines += ["", "## Similar confirmed cases (exact search, k=4)", "",
              "| captures | dim | median ms | p95 ms | CPU median ms |", "|---|---|---|---|---|"]
    for run_ in c["similar"]["runs"]:
        lines.append(f"| {run_['captures']} | {run_['dim']} | {run_['search_ms']['median']:.1f} | "
                     f"{run_['search_ms']['p95']:.1f} | {run_['search_cpu_ms']['median']:.1f} |")
    lines += ["", Path(REPO / "bench-results" / "web.md").read_text()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
