"""Web benchmark (not a test): gunicorn against the configured (seeded) database, driven by wrk
on loopback as a logged-in clinician. Prints a table and writes JSON and Markdown."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from bench.report import machine_description
from clinic.models import Patient
from clinic.selectors import patients_for
from lesions.models import Capture, Lesion

REPO = Path(settings.BASE_DIR)


class Command(BaseCommand):
    help = "Latency percentiles and requests/s per page at 1, 10 and 50 concurrent users (needs wrk)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default="bench")
        parser.add_argument("--password", default="bench-lesiontrack")
        parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
        parser.add_argument("--duration", type=int, default=10, help="seconds per endpoint and concurrency")
        parser.add_argument("--gunicorn-workers", type=int, default=4)
        parser.add_argument("--out", default="bench-results/web.json")

    def handle(self, *args, username: str, password: str, concurrency: list[int], duration: int,
               gunicorn_workers: int, out: str, **options) -> None:
        if not shutil.which("wrk"):
            raise CommandError("wrk is needed (apt-get install wrk)")
        patient = Patient.objects.filter(clinic__memberships__user__username=username).order_by("id").first()
        if patient is None:
            raise CommandError(f"no patients for {username}: run seed_large_clinic first")
        lesion = Lesion.objects.filter(patient__clinic=patient.clinic).order_by("-id").first()
        capture = Capture.objects.filter(lesion=lesion).first()
        port = 8765
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", str(gunicorn_workers), "--threads", "4", "--worker-class", "gthread",
             "--log-level", "warning"], cwd=REPO, env={**os.environ, "AXES_ENABLED": "false"})
        base = f"http://127.0.0.1:{port}"
        try:
            cookie = self._log_in(base, username, password)
            endpoints = {
                "login page": "/accounts/login/",
                "worklist": "/",
                "patient search": self._search_path(base, cookie, patient.name.split()[0]),
                "patient detail": f"/patients/{patient.pk}/",
                "case page": f"/lesions/{lesion.pk}/",
                "image fetch": f"/captures/{capture.pk}/image/original/",
            }
            results = {"machine": machine_description(), "database": connection.vendor,
                       "rows": {"patients": Patient.objects.count(), "lesions": Lesion.objects.count(),
                                "captures": Capture.objects.count()},
                       "gunicorn_workers": gunicorn_workers, "duration_s": duration,
                       "login_post_ms": self._time_logins(base, username, password), "endpoints": {}}
            for name, path in endpoints.items():
                results["endpoints"][name] = {str(c): self._wrk(base + path, cookie, c, duration) for c in concurrency}
            results["explain"] = self._explain(username, patient, lesion)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(results, indent=2))
        Path(out).with_suffix(".md").write_text(self._markdown(results))
        self.stdout.write(self._markdown(results))
        self.stdout.write(f"written {out}")

    def _log_in(self, base: str, username: str, password: str) -> str:
        session = requests.Session()
        deadline = time.monotonic() + 60
        while True:
            try:
                page = session.get(base + "/accounts/login/", timeout=5)
                break
            except requests.ConnectionError:
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

    def _search_path(self, base: str, cookie: str, query: str) -> str:
        """Searches are posted (no names in URLs); the results page is addressed by a session token."""
        headers = {"Cookie": cookie, "Referer": base + "/"}
        page = requests.get(base + "/", headers=headers, timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        response = requests.post(base + "/", data={"q": query, "csrfmiddlewaretoken": token}, headers=headers,
                                 allow_redirects=False, timeout=10)
        if response.status_code != 302:
            raise CommandError(f"patient search failed ({response.status_code})")
        return response.headers["Location"]

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

    def _explain(self, username: str, patient: Patient, lesion: Lesion) -> dict:
        user = get_user_model().objects.get(username=username)
        plans = {}
        queries = {"patient list": patients_for(user)[:25],
                   "patient search": patients_for(user, patient.name.split()[0])[:25],
                   "case page captures": Capture.objects.filter(lesion=lesion).order_by("taken_at", "id")}
        for name, queryset in queries.items():
            plans[name] = queryset.explain()
        return plans

    def _markdown(self, results: dict) -> str:
        m = results["machine"]
        lines = [f"## Web benchmark ({m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; {results['database']}; "
                 f"{results['rows']['patients']} patients, {results['rows']['lesions']} lesions, "
                 f"{results['rows']['captures']} captures)", "",
                 f"Login POST (full round trip, {results['login_post_ms']['count']} times): median "
                 f"{results['login_post_ms']['median']:.1f} ms", "",
                 "| endpoint | users | req/s | p50 ms | p95 ms | p99 ms | errors |", "|---|---|---|---|---|---|---|"]
        for name, by_c in results["endpoints"].items():
            for c, r in by_c.items():
                lines.append(f"| {name} | {c} | {r['rps']:.1f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
                             f"{r['p99_ms']:.1f} | {r['errors']} |")
        lines += ["", "### Query plans", ""]
        for name, plan in results.get("explain", {}).items():
            lines += [f"**{name}**", "", "```", plan, "```", ""]
        return "\n".join(lines) + "\n"
