"""Similar-case search at clinic scale: exact cosine search (lesions.similar.ClinicIndex) over
N unit-length embeddings of the shipped classifier's size, k=4, excluding the query's lesion.

    python bench/similar_search.py [--captures 200000] [--queries 200] [--out bench-results/similar.json]

Prints a table and writes JSON with the machine's description. Target: p95 under 100 ms at
200,000 captures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captures", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=200)
    # 256: the shipped MobileNet classifier's pooled width; 1280: EfficientNet-Lite0's (#12).
    parser.add_argument("--dims", type=int, nargs="+", default=[256, 1280])
    parser.add_argument("--out", default=str(REPO / "bench-results" / "similar.json"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    import django  # noqa: PLC0415 - set up Django first: lesions.similar sits beside the models it reads

    django.setup()
    from bench.report import machine_description, summary  # noqa: PLC0415 - after django.setup()
    from lesions.similar import ClinicIndex  # noqa: PLC0415 - after django.setup()

    runs = []
    print(f"{'captures':>10} {'dim':>5} {'matrix MB':>10} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} "
          f"{'CPU med ms':>12} {'load':>6}")
    for dim in args.dims:
        rng = np.random.default_rng(14)
        matrix = rng.normal(size=(args.captures, dim)).astype(np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        index = ClinicIndex(np.arange(args.captures, dtype=np.int64),
                            rng.integers(0, max(1, args.captures // 3), args.captures), matrix)
        timings, cpu = [], []
        for row in rng.integers(0, args.captures, args.queries):
            started, started_cpu = time.perf_counter(), time.process_time()
            index.search(matrix[row], k=4, exclude_lesion=int(index.lesion_ids[row]))
            timings.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
        # CPU time too: on a shared machine the wall time mostly measures waiting for a core.
        run = {"captures": args.captures, "dim": dim, "queries": args.queries, "k": 4,
               "matrix_mb": round(matrix.nbytes / 1e6, 1), "search_ms": {**summary(timings), "max": max(timings)},
               "search_cpu_ms": summary(cpu), "load_average": os.getloadavg()}
        runs.append(run)
        s, c = run["search_ms"], run["search_cpu_ms"]
        print(f"{args.captures:>10} {dim:>5} {run['matrix_mb']:>10} {s['median']:>10.2f} {s['p95']:>8.2f} "
              f"{s['max']:>8.2f} {c['median']:>12.2f} {os.getloadavg()[0]:>6.1f}")
        del matrix, index
    result = {"runs": runs, "target_ms": 100, "machine": machine_description()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
