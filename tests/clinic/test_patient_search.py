"""Patient search: identifier prefix or name fragment, case-insensitive, within the user's clinics;
on PostgreSQL one trigram index serves it (shown by EXPLAIN)."""

from __future__ import annotations

import pytest
from django.db import connection

from clinic.selectors import patients_for
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(clinic, other_clinic):
    PatientFactory(clinic=clinic, identifier="MRN-1001", name="Olivia Smith")
    PatientFactory(clinic=clinic, identifier="SMI-77", name="Jack Brown")
    PatientFactory(clinic=clinic, identifier="X-SMITH", name="Ivy Jones")  # "smith" inside, not at the start
    PatientFactory(clinic=clinic, identifier="MRN-1002", name="Theo Quenneville")
    PatientFactory(clinic=other_clinic, identifier="MRN-9", name="Grace Smith")


@pytest.mark.parametrize(("query", "names"), [
    ("smith", ["Olivia Smith"]),
    ("SMI", ["Jack Brown", "Olivia Smith"]),
    ("quenne", ["Theo Quenneville"]),
    ("mrn-100", ["Olivia Smith", "Theo Quenneville"]),
    ("1001 Olivia", []),  # spans identifier and name: neither starts nor contains it
    ("%", []),
])
def test_search_matches_identifier_prefix_or_name_fragment(clinician, people, query, names):
    assert [p.name for p in patients_for(clinician, query)] == names


def test_the_search_condition_is_the_trigram_indexs_expression(clinician, people):
    """The index serves only if the SQL of the condition is exactly the indexed expression
    (bench_web shows with EXPLAIN ANALYZE that on a seeded clinic the planner then chooses it)."""
    from django.db.models import F

    from clinic.models import Patient
    from clinic.selectors import PatientSearchText

    if connection.vendor != "postgresql":
        pytest.skip("[needs-service] the trigram index exists on PostgreSQL only")
    search = (Patient.objects.alias(search_text=PatientSearchText(F("identifier"), F("name")))
              .filter(search_text__icontains="smith"))
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # a tiny table: make the planner show what it can use
        try:
            plan = search.explain()
        finally:
            cursor.execute("RESET enable_seqscan")
    assert "patient_search_trgm" in plan, plan


def test_patients_with_the_same_name_are_listed_by_id_whatever_the_plan(clinician, clinic):
    if connection.vendor != "postgresql":
        pytest.skip("the plan settings are PostgreSQL's")
    first = PatientFactory(clinic=clinic, identifier="MRN-1", name="Sam Lee")
    second = PatientFactory(clinic=clinic, identifier="MRN-2", name="Sam Lee")
    # With the (clinic, name, id) index a small clinic is read in id order anyway; a large one may be read
    # by a sequential scan and sorted, where only the id in the ordering keeps same-name patients in
    # order. The table is rewritten with the second patient first and read without indexes (all undone
    # when the test's transaction is rolled back).
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending foreign key checks: the table can be rewritten
        cursor.execute("CREATE INDEX patient_test_reversed ON clinic_patient (name, id DESC)")
        cursor.execute("CLUSTER clinic_patient USING patient_test_reversed")
        cursor.execute("SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off; "
                       "SET LOCAL enable_indexonlyscan = off")
    assert [p.pk for p in patients_for(clinician)] == [first.pk, second.pk]
