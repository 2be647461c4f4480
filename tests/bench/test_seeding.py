"""The benchmark seed builds a clinic whose pages open: full feature records on every analysis
(a seeded lesion with two captures used to answer 500 with KeyError('colours')), lesions with
1, 5 and 20 captures, assessments, histopathology and an audit trail."""

from __future__ import annotations

import io
import itertools
import json
import re
import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from bench.seeding import (
    SEEDED_MODELS,
    SHOWCASE_IDENTIFIER,
    Arg,
    BulkLoad,
    TableWriter,
    _ahead,
    copy_text,
    seed_clinic,
    showcase_lesions,
)
from clinic.models import AuditEvent, Clinic, DataGeneration, Patient
from clinic.selectors import missing_generation_triggers
from lesions.models import Analysis, Capture, Histopathology, Lesion
from tests.factories import ClinicFactory, PatientFactory

pytestmark = pytest.mark.django_db

PIPELINE_FEATURE_KEYS = {"asymmetry", "border", "colours", "diameter", "tds", "change"}


@pytest.fixture
def seeded():
    return seed_clinic(patients=12, lesions=45, captures=330, data_dir=None, images=2, log=lambda _: None)


@pytest.fixture
def bench_client(seeded) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.get(username="bench"))
    return client


def test_seed_builds_the_requested_clinic(seeded):
    assert (Patient.objects.count(), Lesion.objects.count(), Capture.objects.count()) == (12, 45, 330)
    assert Analysis.objects.filter(status="done").count() == 330
    assert Histopathology.objects.exists()
    assert Lesion.objects.exclude(decision="").exists()
    assert AuditEvent.objects.filter(object_type="Capture", action="create").count() == 330
    showcase = Patient.objects.get(identifier=SHOWCASE_IDENTIFIER)
    assert showcase.lesions.count() == 30
    assert set(showcase_lesions()) == {1, 5, 20}


def test_every_seeded_analysis_has_the_pipelines_feature_schema(seeded):
    from lesions.images import decode_rgb
    from ml.features import measure
    from tests.factories import lesion_image

    image = decode_rgb(lesion_image())
    mask = (image.mean(axis=-1) < 120).astype("uint8")
    schema = {key: set(value) for key, value in measure(image, mask, 0.02).items()}
    for features in Analysis.objects.values_list("features", flat=True):
        assert PIPELINE_FEATURE_KEYS <= set(features)
        for key, fields in schema.items():
            assert set(features[key]) == fields, key


@pytest.mark.parametrize("captures", [1, 5, 20])
@pytest.mark.parametrize("page", ["lesion_case", "lesion_compare", "lesion_report"])
def test_seeded_lesion_pages_open(bench_client, captures, page):
    from django.urls import reverse

    lesion_id = showcase_lesions()[captures]
    response = bench_client.get(reverse(page, args=[lesion_id]))
    assert response.status_code == 200
    html = response.content.decode()
    if page != "lesion_compare":
        # Every capture shows its colour record: the row the old seed could not render.
        assert len(re.findall(r"C – colours</th><td>\d", html)) == captures


def test_seeded_patient_page_lists_thirty_lesions(bench_client):
    showcase = Patient.objects.get(identifier=SHOWCASE_IDENTIFIER)
    response = bench_client.get(f"/patients/{showcase.pk}/")
    assert response.status_code == 200
    assert len(set(re.findall(r'href="/lesions/(\d+)/"', response.content.decode()))) == 30


def test_seed_refuses_too_few_captures():
    with pytest.raises(ValueError, match="at least"):
        seed_clinic(patients=2, lesions=40, captures=100, data_dir=None, images=1, log=lambda _: None)


@pytest.mark.django_db(transaction=True)
def test_bench_web_times_the_result_page_of_a_posted_search(live_server):
    """Searches are posted and shown under a session token (#11): bench_web must time that result
    page, not a patient list that ignores ?q= (which is what it timed before)."""
    import requests

    from bench.management.commands.bench_web import Command
    from bench.seeding import COMMON_SURNAME

    seed_clinic(patients=12, lesions=45, captures=330, data_dir=None, images=2, log=lambda _: None)
    command = Command()
    cookie = command._log_in(live_server.url, "bench", "bench-lesiontrack")
    path = command._posted_search(live_server.url, cookie, COMMON_SURNAME)
    assert "?s=" in path
    page = requests.get(live_server.url + path, headers={"Cookie": cookie}, timeout=30).text
    shown = set(re.findall(r'href="/patients/(\d+)/"', page))
    matching = {str(pk) for pk in Patient.objects.filter(name__icontains=COMMON_SURNAME).values_list("pk", flat=True)}
    assert shown and shown <= matching and len(matching) < Patient.objects.count()


def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the bulk load (replica role, index rebuild) is PostgreSQL's")


def _setting(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s)", [name])
        return cursor.fetchone()[0]


def _index_definitions() -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) ORDER BY 1",
                       [[m._meta.db_table for m in SEEDED_MODELS]])
        return cursor.fetchall()


def _generation(clinic_id: int) -> int:
    return DataGeneration.objects.filter(clinic_id=clinic_id).aggregate(total=Sum("generation"))["total"] or 0


def test_seed_leaves_the_indexes_triggers_and_session_as_they_were():
    """The seed loads with the triggers and foreign key checks off for its own transaction and
    rebuilds the indexes it dropped: afterwards every index is back as it was defined, the triggers
    are enabled, this session fires them again, and the clinic's generation has counted the seed."""
    _postgres_only()
    indexes = _index_definitions()
    seed_clinic(patients=12, lesions=45, captures=330, data_dir=None, images=2, log=lambda _: None)
    clinic = Clinic.objects.get(name="Benchmark Clinic")
    assert _index_definitions() == indexes
    assert _setting("session_replication_role") == "origin"
    missing_generation_triggers.cache_clear()
    try:
        assert missing_generation_triggers() == ()
    finally:
        missing_generation_triggers.cache_clear()
    seeded = _generation(clinic.pk)
    assert seeded > 0
    Lesion.objects.filter(pk=Lesion.objects.first().pk).update(label="Renamed after the seed")
    assert _generation(clinic.pk) > seeded


def test_bulk_load_checks_the_references_it_did_not_check_per_row():
    _postgres_only()
    patient = PatientFactory()
    writers = {m: TableWriter(m) for m in SEEDED_MODELS}
    now = timezone.now()
    line = writers[Lesion].template({"patient_id": Arg(0), "label": "orphan", "created_at": now, "updated_at": now})
    with pytest.raises(IntegrityError, match="lesions_lesion.patient_id"):
        with transaction.atomic(), BulkLoad(writers, patient.clinic_id, log=lambda _: None):
            writers[Lesion].copy([line(patient.pk), line(patient.pk + 1000)])
    assert not Lesion.objects.exists()
    assert _setting("session_replication_role") == "origin"  # rolled back with the rows


def test_table_writer_keeps_text_that_copy_format_would_mangle():
    clinic = ClinicFactory()
    awkward = "tab\there, new\nline\r, back\\slash, \\N, {braces} and {0}"
    writer = TableWriter(Patient)
    now = timezone.now()
    line = writer.template({"identifier": Arg(0), "name": Arg(1, "Ms {}"), "notes": Arg(2), "clinic_id": clinic.pk,
                            "created_at": now, "updated_at": now})
    assert writer.copy([line("X1", copy_text(awkward), copy_text(awkward[::-1])), line("X2", "Plain", "")]) == 2
    patient = Patient.objects.get(identifier="X1")
    assert (patient.name, patient.notes, patient.created_at) == ("Ms " + awkward, awkward[::-1], now)
    assert Patient.objects.get(identifier="X2").name == "Ms Plain"


def test_rows_made_ahead_in_a_thread_come_in_order_with_their_error():
    def rows():
        yield from range(5)
        raise RuntimeError("broken row")

    got = []
    with pytest.raises(RuntimeError, match="broken row"):
        for row in _ahead(rows()):
            got.append(row)
    assert got == [0, 1, 2, 3, 4]

    made = []

    def endless():
        for n in itertools.count():
            made.append(n)
            yield n

    ahead = _ahead(endless())
    assert [next(ahead) for _ in range(3)] == [0, 1, 2]
    ahead.close()  # the consumer stopped: so does the thread
    assert not [t for t in threading.enumerate() if t.name == "seed-rows"]
    assert len(made) <= 6


@pytest.mark.usefixtures("data_generation_kept", "seeded")
def test_page_work_counts_each_growth_pages_statements_and_blocks_cold_and_warm(tmp_path):
    from django.core.management import call_command

    from bench.report import GROWTH_ENDPOINTS

    out = tmp_path / "work.json"
    call_command("bench_page_work", out=str(out), stdout=io.StringIO())

    pages = json.loads(out.read_text())["pages"]
    assert set(pages) == set(GROWTH_ENDPOINTS)
    for name, page in pages.items():
        cold, warm = page["cold"], page["warm"]
        # A kept view skips the records' reads: fewer of them, and far fewer blocks.
        assert warm["reads"] < cold["reads"], name
        assert 0 < warm["blocks"] < cold["blocks"], name
        # A record's view writes its audit row; a search's row is written by its post.
        assert warm["statements"] - warm["reads"] == (1 if name.startswith(("case page", "patient page")) else 0), name
        # and, served from what was kept, runs less Python than building it.
        assert 0 < warm["python_calls"] < cold["python_calls"], name


def test_the_summary_shows_each_views_work_and_a_dash_for_counts_an_older_result_lacks():
    from bench.run_all import page_work_table

    work = {"1": {"rows": {"captures": 200_000}, "pages": {"case page (20 captures)": {
        "cold": {"statements": 9, "blocks": 95, "python_calls": 31_204},
        "warm": {"statements": 5, "blocks": 16}}}}}  # written before Python calls were counted

    assert "| case page (20 captures) | 9 / 95 / 31,204 | 5 / 16 / – |" in page_work_table(work)
