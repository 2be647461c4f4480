"""Database work per page as the clinic grows (not a test): each page of the growth table opened in
process as the benchmark clinician, first with its kept parts built afresh (cold: the first view
after a write) and then as kept (warm: what most views are). Every page is opened once before, so
that neither view pays the process's one-off work. For each view: the statements run, and the
shared buffer accesses of its reads (EXPLAIN (ANALYZE, BUFFERS) of each read run again in a
transaction rolled back: blocks hit plus read, planning excluded; a block an index scan visits
twice counts twice; sorts' temporary files are not counted).

Also the Python function calls each view makes in this process (cProfile's count, the test client
and the query capture included): the web side's work, as the statements and blocks are the
database's.

A wrk p95 on a shared 2-core VM moves by half from one run to the next, more than any growth effect;
these counts do not move with the machine's speed, so they show whether a page's work grows with
the clinic, and what a change to a view saves. Prints a table and writes JSON.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import re
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from bench.management.commands.bench_web import POSTED_SEARCH
from bench.management.commands.bench_web import Command as WebBench
from bench.report import GROWTH_ENDPOINTS, machine_description
from clinic.selectors import missing_generation_triggers
from lesions.models import Capture, Lesion

KEPT_PARTS = ("page_parts", "searches")  # settings.CACHES: what a cold view builds afresh


def blocks_of(plan: dict) -> int:
    """Shared blocks hit and read by a plan's execution (its top node counts its children's)."""
    return plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)


READ = re.compile(r"\s*(\(|WITH\b|SELECT\b)", re.IGNORECASE)


def statement_work(sql: str) -> dict:
    """A captured statement's kind and, for a read, the blocks its execution touches. Rolled back:
    a read that locks rows (FOR UPDATE) keeps no lock."""
    if not READ.match(sql):
        return {"read": False, "blocks": 0}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql)
        (explained,) = cursor.fetchone()
        transaction.set_rollback(True)
    document = explained if isinstance(explained, list) else json.loads(explained)
    return {"read": True, "blocks": blocks_of(document[0]["Plan"])}


def view_work(client: Client, path: str) -> dict:
    profile = cProfile.Profile()
    with CaptureQueriesContext(connection) as queries:
        profile.enable()
        try:
            response = client.get(path)
        finally:
            profile.disable()
    if response.status_code != 200:
        raise CommandError(f"{path} answered {response.status_code}")
    statements = [statement_work(q["sql"]) for q in queries.captured_queries]
    return {"statements": len(statements), "reads": sum(s["read"] for s in statements),
            "blocks": sum(s["blocks"] for s in statements), "python_calls": pstats.Stats(profile).total_calls}


class Command(BaseCommand):
    help = "Statements and database blocks per page view, cold and warm, on the seeded clinic."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default="bench")
        parser.add_argument("--clinic", default="Benchmark Clinic")
        parser.add_argument("--out", default="bench-results/work.json")

    def handle(self, *args, username: str, clinic: str, out: str, **options) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("EXPLAIN (BUFFERS) needs PostgreSQL")
        if missing := missing_generation_triggers():
            raise CommandError(f"no page is kept without the data generation triggers: {', '.join(missing)}")
        endpoints = WebBench().endpoints(clinic, username)
        client = Client()
        client.force_login(get_user_model().objects.get(username=username))
        paths = {name: self._path(client, endpoints[name]) for name in GROWTH_ENDPOINTS}
        for path in paths.values():
            view_work(client, path)  # the process's one-off work (templates, blank forms)
        pages = {}
        for name, path in paths.items():
            for cache in KEPT_PARTS:
                caches[cache].clear()
            pages[name] = {"path": path, "cold": view_work(client, path), "warm": view_work(client, path)}
        results = {"machine": machine_description(), "rows": {"lesions": Lesion.objects.count(),
                                                              "captures": Capture.objects.count()},
                   "pages": pages}
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(results, indent=2))
        self.stdout.write(f"{'page':32} {'cold: statements / blocks / Python calls':>42} "
                          f"{'warm: statements / blocks / Python calls':>42}")
        for name, page in pages.items():
            cold, warm = page["cold"], page["warm"]
            self.stdout.write(f"{name:32} {cold['statements']:>16} / {cold['blocks']:>7} / {cold['python_calls']:>12} "
                              f"{warm['statements']:>16} / {warm['blocks']:>7} / {warm['python_calls']:>12}")
        self.stdout.write(f"written {out}")

    @staticmethod
    def _path(client: Client, endpoint: str) -> str:
        """The page's path; for a search, its result page's, as the search form's post redirects to it."""
        if not endpoint.startswith(POSTED_SEARCH):
            return endpoint
        response = client.post(reverse("patient_list"), {"q": endpoint.removeprefix(POSTED_SEARCH)})
        if response.status_code != 302:
            raise CommandError(f"the search for {endpoint.removeprefix(POSTED_SEARCH)!r} answered {response.status_code}")
        return response.url
