"""Web benchmark (not a test): gunicorn against the seeded database, driven by wrk on loopback as
a logged-in clinician, over the pages clinicians open: case page, compare page and report of
lesions with 1, 5 and 20 captures, the patient page of a patient with 30 lesions, patient search
by a common and a rare name, the worklist. Prints a table and writes JSON and Markdown.

Any request that errors (not 200, timeout, connection error) marks its cell ERROR and makes the
command exit non-zero once everything is written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.urls import NoReverseMatch, reverse

from bench.report import GROWTH_ENDPOINTS, machine_description
from bench.seeding import COMMON_SURNAME, RARE_SURNAME, SHOWCASE_IDENTIFIER, showcase_lesions
from clinic.models import Patient
from clinic.selectors import capped_rows, patient_search, patients_for
from lesions.models import Capture, Lesion

REPO = Path(settings.BASE_DIR)
# The worklist home's URL name (#18); while none of these resolves, the row says "not built yet".
WORKLIST_URL_NAMES = ("worklist", "lesions:worklist", "clinic:worklist")
# A patient search is posted (names stay out of URLs) and then shown under a session token, so
# its path is only known after logging in: the endpoint holds this prefix and the search term.
POSTED_SEARCH = "posted-search:"


class Command(BaseCommand):
    help = "Latency percentiles and requests/s per page at 1, 10 and 50 concurrent users (needs wrk)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default="bench")
        parser.add_argument("--password", default="bench-lesiontrack")
        parser.add_argument("--clinic", default="Benchmark Clinic")
        parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
        parser.add_argument("--duration", type=int, default=8, help="seconds per endpoint and concurrency")
        parser.add_argument("--repeat", type=int, default=1,
                            help="runs per endpoint and concurrency; the run with the median p95 (the upper middle one "
                                 "of an even number) is reported")
        parser.add_argument("--gunicorn-workers", type=int, default=3)
        parser.add_argument("--gunicorn-threads", type=int, default=4)
        parser.add_argument("--only", nargs="*", default=None, help="endpoint names to run (default: all)")
        parser.add_argument("--sweep", nargs="*", default=None, metavar="WORKERSxTHREADS",
                            help="instead of the page table: the growth pages at 10 and 50 users for each "
                                 "gunicorn setting, e.g. 2x4 3x4 4x2 (--only and --concurrency do not apply)")
        parser.add_argument("--out", default="bench-results/web.json")

    def handle(self, *args, username: str, password: str, clinic: str, concurrency: list[int], duration: int, repeat: int,
               gunicorn_workers: int, gunicorn_threads: int, only: list[str] | None, sweep: list[str] | None,
               out: str, **options) -> None:
        if not shutil.which("wrk"):
            raise CommandError("wrk is needed (apt-get install wrk)")
        endpoints = self.endpoints(clinic, username)
        rows = {"patients": Patient.objects.count(), "lesions": Lesion.objects.count(),
                "captures": Capture.objects.count()}
        explain = self._explain(username)
        if sweep:
            results = {"machine": machine_description(), "database": connection.vendor, "rows": rows,
                       "duration_s": duration, "repeat": repeat, "sweep": {}}
            for setting in sweep:
                w, t = (int(x) for x in setting.lower().split("x"))
                with self._server(w, t) as base:
                    cookie = self._log_in(base, username, password)
                    results["sweep"][setting] = {
                        name: self._timed(base, cookie, name, endpoints[name], (10, 50), duration, repeat)
                        for name in GROWTH_ENDPOINTS if endpoints[name] is not None}
            self._write(out, results, self._sweep_markdown(results))
            if failed := [f"{setting}: {failure}" for setting, pages in results["sweep"].items()
                          for failure in self._failures(pages)]:
                raise CommandError("requests failed: " + "; ".join(failed))
            return
        selected = {k: v for k, v in endpoints.items() if only is None or k in only}
        results = {"machine": machine_description(), "database": connection.vendor, "rows": rows,
                   "gunicorn": {"workers": gunicorn_workers, "threads": gunicorn_threads, "class": "gthread"},
                   "duration_s": duration, "repeat": repeat, "endpoints": {}, "missing": {}, "explain": explain}
        with self._server(gunicorn_workers, gunicorn_threads) as base:
            cookie = self._log_in(base, username, password)
            results["login_post_ms"] = self._time_logins(base, username, password)
            for name, path in selected.items():
                if path is None:
                    results["missing"][name] = "not built yet (hook: WORKLIST_URL_NAMES in bench_web.py)"
                    continue
                results["endpoints"][name] = self._timed(base, cookie, name, path, concurrency, duration, repeat)
        failed = self._failures(results["endpoints"])
        results["failed"] = failed
        self._write(out, results, self._markdown(results))
        if failed:
            raise CommandError("requests failed: " + "; ".join(failed))

    # -- what is measured -------------------------------------------------------------------------

    def endpoints(self, clinic: str, username: str) -> dict[str, str | None]:
        lesions = showcase_lesions(clinic)
        missing = [n for n in (1, 5, 20) if n not in lesions]
        if missing:
            raise CommandError(f"no showcase lesions with {missing} captures in {clinic!r}: run seed_large_clinic")
        showcase = Patient.objects.get(clinic__name=clinic, identifier=SHOWCASE_IDENTIFIER)
        capture = Capture.objects.filter(lesion_id=lesions[5]).order_by("taken_at").first()
        endpoints: dict[str, str | None] = {"login page": "/accounts/login/"}
        for n in (1, 5, 20):
            endpoints[f"case page ({n} capture{'s' if n > 1 else ''})"] = f"/lesions/{lesions[n]}/"
        for n in (5, 20):
            endpoints[f"compare page ({n} captures)"] = f"/lesions/{lesions[n]}/compare/"
        for n in (1, 5, 20):
            endpoints[f"report ({n} capture{'s' if n > 1 else ''})"] = f"/lesions/{lesions[n]}/report/"
        endpoints["patient page (30 lesions)"] = f"/patients/{showcase.pk}/"
        patients = reverse("patient_list")
        endpoints["patient search (common name)"] = POSTED_SEARCH + COMMON_SURNAME
        endpoints["patient search (rare name)"] = POSTED_SEARCH + RARE_SURNAME
        endpoints["patient list"] = patients
        endpoints["worklist"] = self._worklist_path()
        endpoints["image fetch"] = f"/captures/{capture.pk}/image/overlay/"
        return endpoints

    def _worklist_path(self) -> str | None:
        for name in WORKLIST_URL_NAMES:
            try:
                return reverse(name)
            except NoReverseMatch:
                continue
        return None

    def _explain(self, username: str) -> dict[str, str]:
        """EXPLAIN ANALYZE of the patient search (the page's count and its first page) and the case page's captures."""
        user = get_user_model().objects.get(username=username)
        plans = {}
        for label, term in (("common name", COMMON_SURNAME), ("rare name", RARE_SURNAME)):
            search = patient_search(user, term)  # as the page reads it: the capped count, then the first page
            plans[f"patient search, {label} ({term}): count up to {search.cap + 1}"] = (
                capped_rows(patients_for(user, term), search.cap).explain(analyze=True))
            plans[f"patient search, {label} ({term}): first page"] = search.patients[:25].explain(analyze=True)
        return plans

    # -- running ----------------------------------------------------------------------------------

    class _Server:
        def __init__(self, workers: int, threads: int) -> None:
            self.workers, self.threads, self.port = workers, threads, 8765

        def __enter__(self) -> str:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{self.port}",
                 "--workers", str(self.workers), "--threads", str(self.threads), "--worker-class", "gthread",
                 "--log-level", "warning"], cwd=REPO, env={**os.environ, "AXES_ENABLED": "false"})
            return f"http://127.0.0.1:{self.port}"

        def __exit__(self, *exc) -> None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)

    def _server(self, workers: int, threads: int) -> _Server:
        return self._Server(workers, threads)

    def _log_in(self, base: str, username: str, password: str) -> str:
        session = requests.Session()
        deadline = time.monotonic() + 60
        while True:
            try:
                page = session.get(base + "/accounts/login/", timeout=60)
                break
            except (requests.ConnectionError, requests.ReadTimeout):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        response = session.post(base + "/accounts/login/", data={"username": username, "password": password,
                                                                 "csrfmiddlewaretoken": token},
                                headers={"Referer": base + "/accounts/login/"}, allow_redirects=False, timeout=10)
        if response.status_code != 302:
            raise CommandError(f"login as {username} failed ({response.status_code})")
        return "; ".join(f"{k}={v}" for k, v in session.cookies.items())

    def _posted_search(self, base: str, cookie: str, term: str) -> str:
        """Post the search form as the page does; the path of the result page (``?s=<token>``),
        which the session behind ``cookie`` can then open repeatedly."""
        patients = reverse("patient_list")
        # Requests still queued from the previous wrk run loaded the session before this post and
        # would save it back without the search: post only once the server has drained them.
        self._wait_until_idle(base)
        page = requests.get(base + patients, headers={"Cookie": cookie}, timeout=30)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        response = requests.post(base + patients, data={"q": term, "csrfmiddlewaretoken": token},
                                 headers={"Cookie": cookie, "Referer": base + patients},
                                 allow_redirects=False, timeout=30)
        location = response.headers.get("Location", "")
        if response.status_code != 302 or "?s=" not in location:
            raise CommandError(f"patient search for {term!r} answered {response.status_code} ({location or 'no redirect'})")
        return location.removeprefix(base)

    def _timed(self, base: str, cookie: str, name: str, path: str, concurrency: Iterable[int], duration: int,
               repeat: int) -> dict:
        """One page checked once, then timed at each number of users."""
        if path.startswith(POSTED_SEARCH):
            path = self._posted_search(base, cookie, path.removeprefix(POSTED_SEARCH))
        self._check(base, {name: path}, cookie)
        return {"path": path, "by_users": {str(c): self._repeated(base + path, cookie, c, duration, repeat)
                                           for c in concurrency}}

    def _repeated(self, url: str, cookie: str, connections: int, duration: int, repeat: int) -> dict:
        """wrk `repeat` times: on 2 shared cores one run's p95 moves by half from run to run. The run
        with the median p95 is reported, with every run's p95 and the errors of all runs."""
        runs = [self._wrk(url, cookie, connections, duration) for _ in range(max(1, repeat))]
        middle = sorted(runs, key=lambda run: run["p95_ms"])[len(runs) // 2]
        return {**middle, "errors": sum(run["errors"] for run in runs), "p95_runs_ms": [run["p95_ms"] for run in runs]}

    @staticmethod
    def _failures(endpoints: dict) -> list[str]:
        return [f"{name} at {c} users: {r['errors']} errors"
                for name, e in endpoints.items() for c, r in e["by_users"].items() if r["errors"]]

    def _wait_until_idle(self, base: str, quick_ms: float = 50.0, timeout_s: float = 60.0) -> None:
        """Until a cheap page answers within `quick_ms` (nothing queued ahead of it)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            started = time.perf_counter()
            requests.get(base + "/accounts/login/", timeout=timeout_s)
            if (time.perf_counter() - started) * 1000 < quick_ms:
                return
            time.sleep(0.5)
        raise CommandError(f"the server did not become idle within {timeout_s:.0f} s")

    def _check(self, base: str, endpoints: dict[str, str], cookie: str) -> None:
        """Each page once before timing it: a page that errors fails here with its status."""
        for name, path in endpoints.items():
            response = requests.get(base + path, headers={"Cookie": cookie}, allow_redirects=False, timeout=30)
            if response.status_code != 200:
                raise CommandError(f"{name} ({path}) answered {response.status_code}")

    def _time_logins(self, base: str, username: str, password: str, count: int = 10) -> dict:
        times = []
        for _ in range(count):
            started = time.perf_counter()
            self._log_in(base, username, password)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        return {"median": times[len(times) // 2], "max": times[-1], "count": count}

    def _wrk(self, url: str, cookie: str, connections: int, duration: int) -> dict:
        script = REPO / "bench" / "wrk_report.lua"
        result = subprocess.run(["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{duration}s",
                                 "--timeout", "10s", "-s", str(script), "-H", f"Cookie: {cookie}", url],
                                capture_output=True, text=True, timeout=duration + 60)
        line = [x for x in result.stdout.splitlines() if x.startswith("{")]
        if not line:
            raise CommandError(f"wrk failed: {result.stdout}{result.stderr}")
        return json.loads(line[-1])

    # -- reporting --------------------------------------------------------------------------------

    def _write(self, out: str, results: dict, markdown: str) -> None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(results, indent=2))
        Path(out).with_suffix(".md").write_text(markdown)
        self.stdout.write(markdown)
        self.stdout.write(f"written {out}")

    def _markdown(self, results: dict) -> str:
        m, g = results["machine"], results["gunicorn"]
        lines = [f"## Web benchmark ({m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; {results['database']}; "
                 f"{results['rows']['patients']} patients, {results['rows']['lesions']} lesions, "
                 f"{results['rows']['captures']} captures; gunicorn {g['workers']} workers × {g['threads']} threads)",
                 "", f"Login POST (full round trip, {results['login_post_ms']['count']} times): median "
                     f"{results['login_post_ms']['median']:.1f} ms", "",
                 "| endpoint | users | req/s | p50 ms | p95 ms | p99 ms | errors |", "|---|---|---|---|---|---|---|"]
        for name, e in results["endpoints"].items():
            for c, r in e["by_users"].items():
                mark = f"**ERROR {r['errors']}**" if r["errors"] else "0"
                lines.append(f"| {name} | {c} | {r['rps']:.1f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
                             f"{r['p99_ms']:.1f} | {mark} |")
        for name, why in results["missing"].items():
            lines.append(f"| {name} | – | – | – | – | – | {why} |")
        lines += ["", "### Query plans (EXPLAIN ANALYZE)", ""]
        for name, plan in results.get("explain", {}).items():
            lines += [f"**{name}**", "", "```", plan, "```", ""]
        return "\n".join(lines) + "\n"

    def _sweep_markdown(self, results: dict) -> str:
        setups = list(results["sweep"])
        lines = [f"## gunicorn settings: p95 ms at 10 / 50 users ({results['machine']['cores']} cores, "
                 f"{results['rows']['captures']} captures; gthread workers)", "",
                 "| page | " + " | ".join(f"{s} (workers × threads)" for s in setups) + " |",
                 "|---|" + "---|" * len(setups)]
        for name in GROWTH_ENDPOINTS:
            if any(name not in results["sweep"][setting] for setting in setups):
                continue  # not built (the worklist hook)
            cells = []
            for setting in setups:
                by = results["sweep"][setting][name]["by_users"]
                cells.append(" / ".join(("**ERROR** " if by[c]["errors"] else "") + f"{by[c]['p95_ms']:.0f}"
                                        for c in ("10", "50")))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"
