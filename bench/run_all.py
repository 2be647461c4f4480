"""`make bench`: the inference, pipeline and web benchmarks and the growth tables (p95 and database
work per view), then one JSON and one Markdown summary carrying the machine's description, so
numbers from different machines never mix.

Environment:
  BENCH_DATABASE_URL  PostgreSQL for the 1x clinic (default postgres://postgres@127.0.0.1:5432/lesiontrack_bench;
                      created if missing); the other growth sizes get "<name>_x<scale>".
  CELERY_BROKER_URL   default redis://127.0.0.1:6379/14
  BENCH_DATA          dataset folder with images/ (default ../shared/data/lesions-dev; synthetic images without it)
  BENCH_GROWTH        clinic sizes for the growth table (default "0.1,1"; "0.1,1,10" for 2 million captures)
  BENCH_SWEEP         gunicorn settings to compare on the growth pages (default "2x4 3x4 4x2 6x1"; empty to skip)
  BENCH_REPEAT        wrk runs per page and number of users (default 1); the run with the median p95 is reported
  BENCH_STAGES        which stages to run (default "inference large pipeline web similar growth sweep"); the summary
                      is always rebuilt from whatever bench-results/ holds
Each stage exits non-zero on a failed request or analysis, and so does this script.
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
BASE_SIZE = {"patients": 20_000, "lesions": 60_000, "captures": 200_000}


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


def scale_url(base_url: str, scale: float) -> str:
    return base_url if scale == 1 else f"{base_url}_x{str(scale).replace('.', '_')}"


def seeded_clinic(py: str, env: dict[str, str], scale: float, data: str) -> float | None:
    """Migrate and seed the clinic of this size unless it is there; the seeding time, or None if it was there."""
    ensure_database(env["DATABASE_URL"])
    run([py, "manage.py", "migrate", "--noinput", "-v", "0"], env)
    count = subprocess.run([py, "manage.py", "shell", "-c",
                            "from lesions.models import Capture; print(Capture.objects.count())"],
                           cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout.strip()
    if int(count.splitlines()[-1]) >= int(BASE_SIZE["captures"] * scale):
        return None
    started = time.time()
    run([py, "manage.py", "seed_large_clinic", "--data", data,
         *[x for k, v in BASE_SIZE.items() for x in (f"--{k}", str(int(v * scale)))]], env)
    return time.time() - started


def main() -> int:
    OUT.mkdir(exist_ok=True)
    stages = os.environ.get("BENCH_STAGES", "inference large pipeline web similar growth sweep").split()
    base_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lesiontrack_bench")
    data = os.environ.get("BENCH_DATA", str(REPO.parent / "shared" / "data" / "lesions-dev"))
    growth = [float(x) for x in os.environ.get("BENCH_GROWTH", "0.1,1").split(",") if x]
    sweep = os.environ.get("BENCH_SWEEP", "2x4 3x4 4x2 6x1").split()
    repeat = ["--repeat", os.environ.get("BENCH_REPEAT", "1")]
    env = {**os.environ, "DATABASE_URL": base_url,
           "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/14"),
           "DJANGO_SETTINGS_MODULE": "config.settings.dev"}
    py = sys.executable
    failures = []

    def stage(name: str, cmd: list[str], stage_env: dict[str, str]) -> None:
        try:
            run(cmd, stage_env)
        except subprocess.CalledProcessError as exc:
            failures.append(f"{name} (exit {exc.returncode})")

    if "inference" in stages:
        stage("inference", [py, "-m", "ml", "bench-inference", "--out", str(OUT / "inference.json")], env)
    if "large" in stages:
        stage("large", [py, "bench/large_capture.py", "--data", data, "--out", str(OUT / "large_capture.json")], env)
    seeding = {}
    if {"pipeline", "web", "sweep"} & set(stages):
        seeding["1"] = seeded_clinic(py, env, 1.0, data)
    if "pipeline" in stages:
        stage("pipeline", [py, "manage.py", "bench_pipeline", "--data", data, "--out", str(OUT / "pipeline.json")], env)
    if "web" in stages:
        stage("web", [py, "manage.py", "bench_web", *repeat, "--out", str(OUT / "web.json")], env)
    if "similar" in stages:
        stage("similar", [py, "bench/similar_search.py", "--out", str(OUT / "similar.json")], env)
    if "sweep" in stages and sweep:
        stage("sweep", [py, "manage.py", "bench_web", *repeat, "--sweep", *sweep, "--out", str(OUT / "gunicorn.json")], env)
    if "growth" in stages:
        for scale in growth:
            scale_env = {**env, "DATABASE_URL": scale_url(base_url, scale)}
            seeding[str(scale)] = seeded_clinic(py, scale_env, scale, data)
            stage(f"growth {scale}x", [py, "manage.py", "bench_web", *repeat, "--only", *growth_endpoints(),
                                      "--concurrency", "10", "50", "--out", str(OUT / f"growth-{scale}.json")], scale_env)
            stage(f"page work {scale}x", [py, "manage.py", "bench_page_work", "--out", str(OUT / f"work-{scale}.json")],
                  scale_env)
        previous = json.loads((OUT / "seeding.json").read_text()) if (OUT / "seeding.json").exists() else {}
        (OUT / "seeding.json").write_text(json.dumps({**previous, **{k: v for k, v in seeding.items() if v}}, indent=2))
    write_summary()
    if failures:
        print("FAILED: " + ", ".join(failures), file=sys.stderr)
        return 1
    return 0


def growth_endpoints() -> list[str]:
    sys.path.insert(0, str(REPO))
    # Run as a script (`python bench/run_all.py`): the repository joins sys.path only here.
    from bench.report import GROWTH_ENDPOINTS  # noqa: PLC0415

    return list(GROWTH_ENDPOINTS)


def write_summary() -> None:
    sys.path.insert(0, str(REPO))
    # Run as a script (`python bench/run_all.py`): the repository joins sys.path only here.
    from bench.report import machine_description  # noqa: PLC0415

    combined: dict = {"machine": machine_description(), "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    for name in ("inference", "large_capture", "pipeline", "web", "gunicorn", "seeding", "similar"):
        path = OUT / f"{name}.json"
        if path.exists():
            combined[name] = json.loads(path.read_text())
    combined["growth"] = {p.stem.split("-", 1)[1]: json.loads(p.read_text()) for p in sorted(OUT.glob("growth-*.json"))}
    combined["page_work"] = {p.stem.split("-", 1)[1]: json.loads(p.read_text()) for p in sorted(OUT.glob("work-*.json"))}
    (OUT / "summary.json").write_text(json.dumps(combined, indent=2))
    (OUT / "summary.md").write_text(markdown(combined))
    print(f"\nwritten {OUT / 'summary.json'} and {OUT / 'summary.md'}")


def growth_table(growth: dict) -> list[str]:
    if not growth:
        return []
    scales = sorted(growth, key=float)
    endpoints = list(dict.fromkeys(e for g in growth.values() for e in g["endpoints"]))
    lines = ["## Growth: p95 ms at 10 / 50 users as the clinic grows", "",
             "| endpoint | " + " | ".join(f"{s}x ({growth[s]['rows']['captures']:,} captures)" for s in scales) + " |",
             "|---|" + "---|" * len(scales)]
    for endpoint in endpoints:
        cells = []
        for s in scales:
            by = growth[s]["endpoints"].get(endpoint, {}).get("by_users", {})
            cells.append(" / ".join(("**ERROR** " if by[c]["errors"] else "") + f"{by[c]['p95_ms']:.0f}"
                                    for c in ("10", "50") if c in by) or "–")
        lines.append(f"| {endpoint} | " + " | ".join(cells) + " |")
    missing = {m for g in growth.values() for m in g.get("missing", {})}
    for name in sorted(missing):
        lines.append(f"| {name} | " + " | ".join("not built yet" for _ in scales) + " |")
    return [*lines, ""]


def work_cell(view: dict) -> str:
    calls = view.get("python_calls")  # not counted in results written before it was
    return f"{view['statements']} / {view['blocks']:,} / " + (f"{calls:,}" if calls is not None else "–")


def page_work_table(work: dict) -> list[str]:
    """Statements, database blocks and Python calls per view at each size (bench_page_work): unlike
    a p95, these do not move with the machine's speed."""
    if not work:
        return []
    scales = sorted(work, key=float)
    lines = ["## Growth: work per view, statements / blocks / Python calls (cold: kept parts built afresh; "
             "warm: kept)", "",
             "| page | " + " | ".join(f"{s}x ({work[s]['rows']['captures']:,} captures) cold | {s}x warm"
                                      for s in scales) + " |",
             "|---|" + "---|---|" * len(scales)]
    for page in dict.fromkeys(p for w in work.values() for p in w["pages"]):
        cells = [work_cell(v[view]) if (v := work[s]["pages"].get(page)) else "–" for s in scales
                 for view in ("cold", "warm")]
        lines.append(f"| {page} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def markdown(c: dict) -> str:
    m = c["machine"]
    lines = [f"# LesionTrack benchmarks — {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB ({m['host']})",
             f"Summary written {c['finished']}. Load average when each part ran is in its JSON (machine.load_avg_1_5_15).",
             ""]
    if "inference" in c:
        inf = c["inference"]
        lines += [f"## Inference (per image, ms; device {inf.get('device')}, runtime {inf.get('runtime', 'tensorflow')}, "
                  f"models {inf.get('models')})", "",
                  "| batch | stage | median | p95 |", "|---|---|---|---|"]
        for batch, stages in inf["batches"].items():
            for stage, s in stages.items():
                lines.append(f"| {batch} | {stage} | {s['median_ms']:.1f} | {s['p95_ms']:.1f} |")
        if inf.get("where_compiled_loses"):
            lines += ["", inf["where_compiled_loses"]]
        lines.append("")
    if "large_capture" in c:
        large = c["large_capture"]
        lines += [f"## One capture at camera sizes (median ms of {large['repeat']}, runtime {large['runtime']})", "",
                  "| step | " + " | ".join(f"{r['side']} px" for r in large["rows"]) + " |",
                  "|---|" + "---|" * len(large["rows"])]
        for step in large["rows"][0]["median_ms"]:
            lines.append(f"| {step} | " + " | ".join(f"{r['median_ms'][step]:.0f}" for r in large["rows"]) + " |")
        lines.append("")
    if "pipeline" in c:
        lines += ["## Pipeline (burst of uploads, real workers)", "",
                  "| set-up | analyses/min | latency median s | p95 s | median batch | failed |",
                  "|---|---|---|---|---|---|"]
        for r in c["pipeline"]["runs"].values():
            lines.append(f"| {r.get('setup', r['workers'])} | {r['throughput_per_min']:.1f} | "
                         f"{r['latency_s']['median']:.2f} | {r['latency_s']['p95']:.2f} | "
                         f"{r.get('batch_sizes', {}).get('median', 1):.0f} | {r.get('failed', 0)} |")
        lines.append("")
    if "seeding" in c:
        lines += ["Seeding time (s): " + ", ".join(f"{k}x {v:.0f}" for k, v in c["seeding"].items()), ""]
    if "similar" in c:
        lines += ["## Similar confirmed cases (exact search, k=4)", "",
                  "| captures | dim | median ms | p95 ms | CPU median ms |", "|---|---|---|---|---|"]
        for run_ in c["similar"]["runs"]:
            lines.append(f"| {run_['captures']} | {run_['dim']} | {run_['search_ms']['median']:.1f} | "
                         f"{run_['search_ms']['p95']:.1f} | {run_['search_cpu_ms']['median']:.1f} |")
        lines.append("")
    lines += growth_table(c.get("growth", {}))
    lines += page_work_table(c.get("page_work", {}))
    for name in ("web", "gunicorn"):
        md = OUT / f"{name}.md"
        if md.exists():
            lines += [md.read_text(), ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
