"""Shared pieces of the benchmarks: the machine's description and percentile tables."""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path

# The pages the growth table compares across clinic sizes (names as in bench_web).
GROWTH_ENDPOINTS = ("case page (20 captures)", "patient page (30 lesions)", "patient search (common name)",
                    "patient search (rare name)", "worklist")


def machine_description() -> dict:
    from ml.bench import cpu_model

    cpu = cpu_model()
    memory_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    # The load when measured: our development machine is shared, and its load moves every number.
    load = [round(x, 1) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {"host": platform.node(), "cpu": cpu, "cores": os.cpu_count(), "memory_gb": memory_gb,
            "python": platform.python_version(), "platform": platform.platform(), "load_avg_1_5_15": load}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[index]


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values) if values else float("nan"), "p95": percentile(values, 95),
            "count": len(values)}
