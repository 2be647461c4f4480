"""The worklist cache's data generation across database sessions, as in production where web
processes, workers and the sweep write at once: the counting triggers never make one writer wait
on another, a write committed by another session shows on the next page, also when it commits
while a page is being built, and nothing is cached while a counting trigger is missing or
disabled. Each session here is a connection of its own, with a statement_timeout, so a writer
that waits fails the test in seconds instead of hanging it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import psycopg2
import pytest
from django.db import connection
from django.utils import timezone
from psycopg2 import sql

from clinic.models import DataGeneration
from clinic.selectors import data_generation, missing_generation_triggers
from lesions import presentation
from lesions.models import Lesion
from tests.factories import LesionFactory, PatientFactory
from tests.lesions.test_worklist_cache import worklist_part

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("data_generation_kept")]


@contextmanager
def session(*, starts_at_pid: int | None = None, timeout: str = "5s") -> Iterator:
    """A database session of its own (psycopg2, not in autocommit). `starts_at_pid`: count in the
    slots as a session with that backend id does (lesiontrack.generation_pid, clinic 0007)."""
    conn = connection.get_new_connection(connection.get_connection_params())
    try:
        run(conn, "SET statement_timeout = %s", [timeout])
        if starts_at_pid is not None:
            run(conn, "SELECT set_config('lesiontrack.generation_pid', %s, false)", [str(starts_at_pid)])
        conn.commit()
        yield conn
    finally:
        conn.close()


def run(conn, statement, params=None) -> list[tuple]:
    with conn.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def backend_pid(conn) -> int:
    return run(conn, "SELECT pg_backend_pid()")[0][0]


def slot_rows(clinic_id: int) -> dict[int, int]:
    return dict(DataGeneration.objects.filter(clinic_id=clinic_id).values_list("slot", "generation"))


def lock_key(clinic_id: int, slot: int) -> int:
    """clinic 0007's advisory lock key for a clinic's slot."""
    return (DataGeneration.ADVISORY_LOCK_NAMESPACE << 48) | ((clinic_id & ((1 << 42) - 1)) << 6) | slot


def test_writers_starting_at_one_slot_neither_wait_nor_deadlock(clinic):
    """The reviewer's reproduction (two sessions whose backend ids share a slot, locking two
    patients in opposite order): before, B waited on A's slot row until A committed, and A then
    waited on B's patient: a deadlock. Now B counts in the next slot and goes on."""
    first, second = PatientFactory(clinic=clinic), PatientFactory(clinic=clinic)
    before, rows_before = data_generation(clinic.pk), slot_rows(clinic.pk)
    with session() as a:
        pid = backend_pid(a)
        with session(starts_at_pid=pid, timeout="3s") as b:
            run(a, "UPDATE clinic_patient SET name = 'A' WHERE id = %s", [first.pk])  # A: P1 and its slot
            run(b, "UPDATE clinic_patient SET name = 'B' WHERE id = %s", [second.pk])  # B: P2, must not wait
            b.commit()
            run(a, "UPDATE clinic_patient SET name = 'A2' WHERE id = %s", [second.pk])  # A: P2, free now
            a.commit()
    assert data_generation(clinic.pk) == before + 3
    # A counted twice in its own slot (its lock taken again), B once in the next one.
    added = {slot: n - rows_before.get(slot, 0) for slot, n in slot_rows(clinic.pk).items()
             if n != rows_before.get(slot, 0)}
    assert added == {pid % 64: 2, (pid + 1) % 64: 1}


def test_a_writer_counts_in_the_one_free_slot_and_waits_only_when_none_is_free(clinic):
    patient = PatientFactory(clinic=clinic)
    before, in_41_before = data_generation(clinic.pk), slot_rows(clinic.pk).get(41, 0)
    with session() as holder, session(starts_at_pid=0, timeout="1s") as writer:
        for slot in range(DataGeneration.SLOTS):
            if slot != 41:
                run(holder, "SELECT pg_advisory_xact_lock(%s)", [lock_key(clinic.pk, slot)])
        run(writer, "UPDATE clinic_patient SET name = 'counted in 41' WHERE id = %s", [patient.pk])
        writer.commit()
        assert slot_rows(clinic.pk).get(41) == in_41_before + 1 and data_generation(clinic.pk) == before + 1

        # Every slot held elsewhere: the writer waits rather than leave the write uncounted.
        run(holder, "SELECT pg_advisory_xact_lock(%s)", [lock_key(clinic.pk, 41)])
        with pytest.raises(psycopg2.errors.QueryCanceled):
            run(writer, "UPDATE clinic_patient SET name = 'waits' WHERE id = %s", [patient.pk])
        writer.rollback()
        holder.rollback()
    assert data_generation(clinic.pk) == before + 1


def test_a_session_with_an_empty_search_path_counts_its_writes(clinic, lesion):
    """pg_restore --data-only and other tools run with search_path = '': the counting functions,
    clinic's (clinic 0007 and 0009) and lesions' (lesions 0010), name their schema themselves."""
    before = data_generation(clinic.pk)
    schema = run(connection.connection, "SELECT current_schema()")[0][0]
    with session() as restore:
        run(restore, "SET search_path = ''")
        for table, column, row in (("clinic_clinic", "name", clinic.pk), ("clinic_patient", "updated_at", lesion.patient_id),
                                   ("lesions_lesion", "updated_at", lesion.pk)):
            run(restore, sql.SQL("UPDATE {}.{} SET {} = {} WHERE id = %s").format(
                sql.Identifier(schema), sql.Identifier(table), sql.Identifier(column), sql.Identifier(column)), [row])
        restore.commit()
    assert data_generation(clinic.pk) == before + 3


@pytest.fixture
def due(patient) -> Lesion:
    return LesionFactory(patient=patient, label="Due mole", next_review_date=timezone.localdate() + timedelta(days=3))


def rename_elsewhere(lesion: Lesion, label: str, *, away_from_pid: int) -> None:
    """Commit a rename from another session that counts in a slot other than this test's session's."""
    with session(starts_at_pid=away_from_pid + 1) as other:
        run(other, "UPDATE lesions_lesion SET label = %s WHERE id = %s", [label, lesion.pk])
        other.commit()


def rename_while_rendering(monkeypatch, lesion: Lesion, shown: str) -> None:
    """Each time a cached part is rendered showing ``shown``, rename ``lesion`` from another session
    (committed) before the part is stored: after the records were read, before the cache write."""
    render = presentation.render_to_string
    pid = backend_pid(connection.connection)

    def render_then_write(*args, **kwargs):
        html = render(*args, **kwargs)
        if shown in html:
            rename_elsewhere(lesion, "Renamed while building", away_from_pid=pid)
        return html

    monkeypatch.setattr(presentation, "render_to_string", render_then_write)


def test_a_write_committed_by_another_session_shows_on_the_next_page(client_logged_in, due):
    assert "Due mole" in worklist_part(client_logged_in)  # now cached
    rename_elsewhere(due, "Renamed elsewhere", away_from_pid=backend_pid(connection.connection))
    assert "Renamed elsewhere" in worklist_part(client_logged_in)


def test_a_write_committed_while_the_page_is_built_shows_on_the_next_page(client_logged_in, due, monkeypatch):
    """A write that commits after the records were read but before the page is cached: the page
    must be cached under the generation from before the write, so the next request rebuilds it."""
    rename_while_rendering(monkeypatch, due, "Due mole")
    assert "Due mole" in worklist_part(client_logged_in)
    assert "Renamed while building" in worklist_part(client_logged_in)


@pytest.fixture
def trigger_check():
    missing_generation_triggers.cache_clear()
    yield
    missing_generation_triggers.cache_clear()  # checked again with every trigger back in place


@pytest.mark.parametrize("statement", [
    "ALTER TABLE lesions_lesion DISABLE TRIGGER lesions_lesion_updated",
    "DROP TRIGGER lesions_lesion_updated ON lesions_lesion",
])
def test_nothing_is_cached_while_a_counting_trigger_is_disabled_or_missing(client_logged_in, clinic, due, caplog,
                                                                         trigger_check, statement):
    assert missing_generation_triggers() == ()
    missing_generation_triggers.cache_clear()
    with connection.cursor() as cursor:
        cursor.execute(statement)
    try:
        with caplog.at_level(logging.WARNING, logger="clinic.selectors"):
            assert "Due mole" in worklist_part(client_logged_in)
            Lesion.objects.filter(pk=due.pk).update(label="Renamed uncounted")  # the trigger does not count it
            assert "Renamed uncounted" in worklist_part(client_logged_in)
        assert data_generation(clinic.pk) is None
        warnings = [r for r in caplog.records if "lesions_lesion_updated" in r.getMessage()]
        assert len(warnings) == 1, "warned once per process"
    finally:
        with connection.cursor() as cursor:
            if statement.startswith("DROP"):
                cursor.execute("CREATE TRIGGER lesions_lesion_updated AFTER UPDATE ON lesions_lesion "
                               "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
                               "FOR EACH STATEMENT EXECUTE FUNCTION lesions_lesion_data_changed()")
            else:
                cursor.execute("ALTER TABLE lesions_lesion ENABLE TRIGGER lesions_lesion_updated")
