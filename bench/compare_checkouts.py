"""Two checkouts of the app against the same seeded database, interleaved, on the same pages: a
before/after that holds on a machine whose load changes from minute to minute (as ours does,
shared by several engineers). Not part of `make bench`.

    DATABASE_URL=postgres://…/lesiontrack_bench DJANGO_SETTINGS_MODULE=config.settings.dev \\
      python bench/compare_checkouts.py --before /tmp/base --after . --rounds 2 --users 10

Prints a table (median over rounds of each round's p50 and p95) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", default=str(REPO))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--duration", type=int, default=6)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--out", default="bench-results/before-after.json")
    args = parser.parse_args()
    # A script: the repository joins sys.path here, and Django is set up before its models are imported.
    sys.path.insert(0, str(REPO))
    import django  # noqa: PLC0415

    django.setup()
    from bench.management.commands.bench_web import Command  # noqa: PLC0415

    web = Command()
    endpoints = {k: v for k, v in web.endpoints("Benchmark Clinic", "bench").items()
                 if v and (not args.only or k in args.only) and k not in ("login page", "image fetch")}
    results: dict[str, dict[str, list[dict]]] = {"before": {}, "after": {}}
    port = 8766
    for _ in range(args.rounds):
        for variant in ("before", "after"):
            server = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
                 "--workers", str(args.workers), "--threads", str(args.threads), "--worker-class", "gthread",
                 "--log-level", "warning"],
                cwd=getattr(args, variant), env={**os.environ, "AXES_ENABLED": "false",
                                                 "DJANGO_SETTINGS_MODULE": "config.settings.base"})
            try:
                base = f"http://127.0.0.1:{port}"
                cookie = web._log_in(base, "bench", "bench-lesiontrack")
                for name, path in endpoints.items():
                    web._check(base, {name: path}, cookie)
                    web._wrk(base + path, cookie, args.users, 2)  # warm the workers
                    results[variant].setdefault(name, []).append(web._wrk(base + path, cookie, args.users,
                                                                          args.duration))
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(30)
    rows = []
    print(f"| endpoint ({args.users} users) | before p50 | before p95 | after p50 | after p95 | errors |")
    print("|---|---|---|---|---|---|")
    for name in endpoints:
        b, a = results["before"][name], results["after"][name]
        row = {"endpoint": name, **{f"{v}_{k}": statistics.median(r[f"{k}_ms"] for r in rs)
                                    for v, rs in (("before", b), ("after", a)) for k in ("p50", "p95")},
               "errors": sum(r["errors"] for r in a + b)}
        rows.append(row)
        print(f"| {name} | {row['before_p50']:.0f} | {row['before_p95']:.0f} | {row['after_p50']:.0f} | "
              f"{row['after_p95']:.0f} | {row['errors']} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows, "raw": results}, indent=2))
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
