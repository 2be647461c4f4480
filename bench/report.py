"""Shared pieces of the benchmarks: the machine's description and percentile tables."""

from __future__ import annotations

import statistics

from ml.bench import machine_description, percentile

__all__ = ["machine_description", "percentile", "summary"]


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values) if values else float("nan"), "p95": percentile(values, 95),
            "count": len(values)}
