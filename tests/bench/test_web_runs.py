"""bench_web's reduction of repeated wrk runs and its gunicorn table (no server, no wrk)."""

from __future__ import annotations

from bench.management.commands.bench_web import Command
from bench.report import GROWTH_ENDPOINTS


def _run(p95: float, errors: int = 0) -> dict:
    return {"rps": 100.0, "p50_ms": p95 / 2, "p95_ms": p95, "p99_ms": p95 * 1.5, "errors": errors}


def test_repeated_runs_report_the_median_run_every_p95_and_all_errors(monkeypatch):
    runs = iter([_run(140.0), _run(60.0, errors=2), _run(95.0)])
    command = Command()
    monkeypatch.setattr(command, "_wrk", lambda *args: next(runs))
    result = command._repeated("http://x/", "c", 10, 8, 3)
    assert result["p95_ms"] == 95.0 and result["p99_ms"] == 95.0 * 1.5  # the whole median run, not a mix
    assert result["p95_runs_ms"] == [140.0, 60.0, 95.0]
    assert result["errors"] == 2  # an error in a run that is not reported still fails the page


def test_one_run_is_reported_as_it_is(monkeypatch):
    command = Command()
    monkeypatch.setattr(command, "_wrk", lambda *args: _run(70.0))
    assert command._repeated("http://x/", "c", 10, 8, 1) == {**_run(70.0), "p95_runs_ms": [70.0]}


def test_the_gunicorn_table_has_a_row_per_page_and_marks_errors():
    by_users = {"10": _run(80.0), "50": _run(300.0, errors=1)}
    results = {"machine": {"cores": 2}, "rows": {"captures": 200000},
               "sweep": {s: {name: {"by_users": by_users} for name in GROWTH_ENDPOINTS} for s in ("2x4", "6x1")}}
    table = Command()._sweep_markdown(results)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "workers" not in line]
    assert [row.split(" | ")[0].lstrip("| ") for row in rows] == list(GROWTH_ENDPOINTS)
    assert all(row.count("80 / **ERROR** 300") == 2 for row in rows)
    failures = Command._failures(results["sweep"]["2x4"])
    assert len(failures) == len(GROWTH_ENDPOINTS) and all("at 50 users: 1 errors" in f for f in failures)
