"""bench/large_capture.py times a capture's worker steps at camera sizes and `make bench` shows them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_large_capture_benchmark_times_every_step_and_the_summary_shows_them(tmp_path):
    out = tmp_path / "large_capture.json"
    # No data folder: a synthetic capture, scaled to each side.
    subprocess.run([sys.executable, "bench/large_capture.py", "--sides", "320", "640", "--repeat", "1",
                    "--data", str(tmp_path / "none"), "--out", str(out)], cwd=REPO, check=True,
                   capture_output=True, timeout=300)
    result = json.loads(out.read_text())
    assert [row["side"] for row in result["rows"]] == [320, 640]
    assert [row["pixels"] for row in result["rows"]] == [320 * 240, 640 * 480]
    for row in result["rows"]:
        steps = row["median_ms"]
        assert all(steps[name] > 0 for name in steps)
        parts = sum(v for name, v in steps.items() if name != "total")
        assert parts <= steps["total"] * 1.01 and parts > steps["total"] * 0.5  # the steps make up the total
    assert result["runtime"] in ("tflite", "tensorflow") and result["machine"]["cores"] >= 1

    from bench.run_all import markdown  # noqa: PLC0415

    summary = markdown({"machine": result["machine"], "finished": "now", "large_capture": result})
    assert "| step | 320 px | 640 px |" in summary
    assert f"| thumbnail | {result['rows'][0]['median_ms']['thumbnail']:.0f} |" in summary
