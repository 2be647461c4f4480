"""Shared pieces of the benchmarks: the machine's description and percentile tables."""

from __future__ import annotations

import os
import statistics

from ml.bench import machine_description as _ml_machine_description
from ml.bench import percentile

__all__ = ["GROWTH_ENDPOINTS", "machine_description", "percentile", "summary"]

# The pages the growth table compares across clinic sizes (names as in bench_web).
GROWTH_ENDPOINTS = ("case page (20 captures)", "patient page (30 lesions)", "patient search (common name)",
                    "patient search (rare name)", "worklist")


def machine_description() -> dict:
    """ml.bench's description plus the load when measured: our development machine is shared,
    and its load moves every number."""
    load = [round(x, 1) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {**_ml_machine_description(), "load_avg_1_5_15": load}


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values) if values else float("nan"), "p95": percentile(values, 95),
            "count": len(values)}
