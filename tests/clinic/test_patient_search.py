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


# A capped count: a common name in a large clinic is counted only up to SEARCH_MATCH_CAP ------------

@pytest.fixture
def six_smiths(clinic, other_clinic):
    for n in range(6):
        PatientFactory(clinic=clinic, identifier=f"S-{n}", name=f"Smith {chr(ord('F') - n)}")
    PatientFactory(clinic=other_clinic, identifier="S-X", name="Smith Elsewhere")


@pytest.mark.parametrize(("cap", "counted"), [(2, 3), (5, 6), (6, 6), (50, 6)])
def test_count_up_to_stops_one_past_the_cap(clinician, six_smiths, cap, counted):
    from django.test.utils import CaptureQueriesContext

    from clinic.selectors import count_up_to

    smiths = patients_for(clinician, "smith")  # reads the user's clinics: not the query looked at below
    with CaptureQueriesContext(connection) as queries:
        assert count_up_to(smiths, cap) == counted
    (query,) = queries.captured_queries
    assert f"LIMIT {cap + 1}" in query["sql"], query["sql"]  # the database reads no further


def search_page(client, query: str, page: int | None = None) -> str:
    from django.urls import reverse

    response = client.post(reverse("patient_list"), {"q": query})
    url = response.url + (f"&page={page}" if page else "")
    return client.get(url).content.decode()


def test_a_search_past_the_cap_lists_the_first_by_name_and_asks_to_narrow_it(
        client_logged_in, six_smiths, monkeypatch):
    import clinic.selectors
    import clinic.views

    monkeypatch.setattr(clinic.selectors, "SEARCH_MATCH_CAP", 4)
    monkeypatch.setattr(clinic.views, "PATIENTS_PER_PAGE", 3)
    first = search_page(client_logged_in, "smith")
    assert "More than 4 patients match “smith”" in first and "Add a first name or an identifier" in first
    assert "Page 1 of 2" in first
    assert [n for n in "ABCDEF" if f"Smith {n}<" in first] == ["A", "B", "C"]
    second = search_page(client_logged_in, "smith", page=2)
    assert [n for n in "ABCDEF" if f"Smith {n}<" in second] == ["D"]
    assert "Page 2 of 2" in second and ">Next</a>" not in second
    beyond = search_page(client_logged_in, "smith", page=3)  # past the cap: the last page, not an error
    assert [n for n in "ABCDEF" if f"Smith {n}<" in beyond] == ["D"]


def test_a_search_within_the_cap_is_counted_whole_and_says_nothing_more(client_logged_in, six_smiths, monkeypatch):
    import clinic.selectors
    import clinic.views

    monkeypatch.setattr(clinic.selectors, "SEARCH_MATCH_CAP", 6)
    monkeypatch.setattr(clinic.views, "PATIENTS_PER_PAGE", 3)
    first = search_page(client_logged_in, "smith")
    assert "More than" not in first and "Page 1 of 2" in first
    assert [n for n in "ABCDEF" if f"Smith {n}<" in search_page(client_logged_in, "smith", page=2)] == ["D", "E", "F"]


def test_the_unsearched_list_of_a_large_clinic_is_capped_too(client_logged_in, six_smiths, monkeypatch):
    import clinic.selectors

    monkeypatch.setattr(clinic.selectors, "SEARCH_MATCH_CAP", 5)
    from django.urls import reverse

    content = client_logged_in.get(reverse("patient_list")).content.decode()
    assert "More than 5 patients are in your clinics" in content and "Search by name or identifier" in content


def test_the_audit_row_of_a_search_past_the_cap_says_so(client_logged_in, six_smiths, monkeypatch):
    import clinic.selectors
    from clinic.models import AuditEvent

    monkeypatch.setattr(clinic.selectors, "SEARCH_MATCH_CAP", 4)
    search_page(client_logged_in, "smith")
    search_page(client_logged_in, "smith a")
    capped, single = AuditEvent.objects.filter(action="search").order_by("id")
    assert capped.detail["results"] == 4 and capped.detail["results_capped"] is True
    assert single.detail["results"] == 1 and "results_capped" not in single.detail


def test_an_api_search_past_the_cap_pages_the_first_by_name_and_says_so(api_client, six_smiths, monkeypatch):
    import clinic.selectors
    from clinic.models import AuditEvent

    monkeypatch.setattr(clinic.selectors, "SEARCH_MATCH_CAP", 4)
    first = api_client.get("/api/v1/patients/", {"q": "smith", "limit": 3}).json()
    assert first["count"] == 4 and first["count_capped"] is True and first["next"]
    assert [p["name"] for p in first["results"]] == ["Smith A", "Smith B", "Smith C"]
    last = api_client.get(first["next"]).json()
    assert [p["name"] for p in last["results"]] == ["Smith D"] and last["next"] is None
    narrowed = api_client.get("/api/v1/patients/", {"q": "smith a"}).json()
    assert narrowed["count"] == 1 and narrowed["count_capped"] is False
    rows = AuditEvent.objects.filter(action="search").order_by("id")
    assert [(r.detail["results"], r.detail.get("results_capped")) for r in rows] == [(4, True), (4, True), (1, None)]
    assert all(r.detail["api_token"] and r.username == "alice" for r in rows)


@pytest.mark.parametrize(("params", "count", "capped", "names"), [
    ({"q": "smith", "offset": 4}, 4, True, []),  # at the cap: nothing past it
    ({"q": "smith", "offset": 9}, 4, True, []),
    ({"q": "smith", "limit": 200}, 4, True, ["Smith A", "Smith B", "Smith C", "Smith D"]),  # limit past the cap
    ({"q": "smith", "offset": 2, "limit": 5}, 4, True, ["Smith C", "Smith D"]),
])
def test_an_api_search_never_pages_past_the_cap(api_client, six_smiths, monkeypatch, params, count, capped, names):
    import clinic.selectors

    monkeypatch.setattr(clinic.selectors, "SEARCH_MATCH_CAP", 4)
    body = api_client.get("/api/v1/patients/", params).json()
    assert (body["count"], body["count_capped"], body["next"]) == (count, capped, None)
    assert [p["name"] for p in body["results"]] == names


def test_an_api_search_of_exactly_the_cap_is_not_capped(api_client, six_smiths, monkeypatch):
    import clinic.selectors

    monkeypatch.setattr(clinic.selectors, "SEARCH_MATCH_CAP", 6)
    body = api_client.get("/api/v1/patients/", {"q": "smith", "limit": 10}).json()
    assert body["count"] == 6 and body["count_capped"] is False and len(body["results"]) == 6


def test_the_apis_unsearched_list_counts_and_pages_every_patient(api_client, six_smiths, monkeypatch):
    import clinic.selectors

    monkeypatch.setattr(clinic.selectors, "SEARCH_MATCH_CAP", 4)  # a records system's sync reads them all
    first = api_client.get("/api/v1/patients/", {"limit": 5}).json()
    assert first["count"] == 6 and first["count_capped"] is False
    assert len(first["results"]) + len(api_client.get(first["next"]).json()["results"]) == 6


def _bulk_patients(clinic, count: int, *, smith_percent: int, seed: int, prefix: str) -> None:
    """`count` patients of whom about `smith_percent` in a hundred are Smiths, in one INSERT."""
    import random

    from clinic.models import Patient

    rng = random.Random(seed)
    surnames = ["Smith"] * smith_percent + [("Jones", "Brown", "Patel", "Evans")[n % 4] for n in range(100 - smith_percent)]
    given = ["Ada", "Ben", "Cy"]
    Patient.objects.bulk_create(
        Patient(clinic=clinic, identifier=f"{prefix}{n:05d}", name=f"{rng.choice(given)} {rng.choice(surnames)}")
        for n in range(count))


def _analyze() -> None:
    """As a table looks after routine maintenance: statistics taken and the rows just inserted moved
    from the trigram index's pending list into the index (the planner prices an unsorted pending list high)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT gin_clean_pending_list('patient_search_trgm'::regclass)")
        cursor.execute("ANALYZE clinic_patient")


def test_a_common_names_first_page_walks_the_name_index_and_a_rare_one_the_trigram_index(clinician, clinic):
    """The cost of a common name's first page must not grow with its matches: once the capped count
    has shown the name to be common, the planner has to see it too (migration 0008: the expression's
    larger statistics sample, the exact condition as one function) and read the (clinic, name, id)
    index until a page is full."""
    from clinic.selectors import patient_search

    if connection.vendor != "postgresql":
        pytest.skip("[needs-service] the plans are PostgreSQL's")
    _bulk_patients(clinic, 20000, smith_percent=15, seed=15, prefix="P")
    PatientFactory(clinic=clinic, identifier="Q-1", name="Ivy Quenneville")
    _analyze()
    common, rare = patient_search(clinician, "smith", cap=100), patient_search(clinician, "quenneville", cap=100)
    assert common.more and not rare.more and rare.matched == 1
    common_plan, rare_plan = common.patients[:25].explain(), rare.patients[:25].explain()
    assert "patient_clinic_name" in common_plan and "patient_search_trgm" not in common_plan, common_plan
    assert "patient_search_trgm" in rare_plan, rare_plan
    assert [p.name for p in rare.patients] == ["Ivy Quenneville"]
    first_page = list(common.patients[:25])
    assert first_page == sorted(first_page, key=lambda p: (p.name, p.pk)) and len(first_page) == 25
    assert all("SMITH" in p.name.upper() for p in first_page)
    # The same rows, in the same order, as the two LIKEs find them.
    assert list(common.patients[:200]) == list(patients_for(clinician, "smith")[:200])


def test_a_name_common_in_another_clinic_but_rare_in_this_one_does_not_walk_the_name_index(
        clinician, clinic, other_clinic):
    """The planner's statistics are the whole table's: given the one-function condition it would take
    "Smith" for common here too and walk this clinic's whole name index to find its two Smiths (376 ms
    against 46 ms at 90,000 patients, in review). The count of this clinic's matches decides: the two
    LIKEs, read as before."""
    from clinic.selectors import patient_search

    if connection.vendor != "postgresql":
        pytest.skip("[needs-service] the plans are PostgreSQL's")
    _bulk_patients(other_clinic, 4000, smith_percent=33, seed=16, prefix="O")
    _bulk_patients(clinic, 4000, smith_percent=0, seed=17, prefix="P")
    PatientFactory(clinic=clinic, identifier="S-1", name="Zoe Smith")
    PatientFactory(clinic=clinic, identifier="S-2", name="Ada Smith")
    _analyze()
    search = patient_search(clinician, "smith", cap=100)
    assert search.matched == 2 and not search.more
    plan = search.patients[:25].explain()
    assert "patient_search_matches" not in plan and "patient_clinic_name" not in plan, plan
    assert [p.name for p in search.patients] == ["Ada Smith", "Zoe Smith"]


@pytest.mark.parametrize(("identifier", "name", "query", "matches"), [
    ("MRN-1", "Ada Smith", "smi", True),  # name contains, any case
    ("SMI-7", "Jack Brown", "smi", True),  # identifier starts with
    ("X-SMITH", "Ivy Jones", "smith", False),  # identifier contains, not at the start
    ("A%B", "x", "a_", False),  # LIKE wildcards in the query are plain characters
    ("A_B", "x", "a_", True),
    ("MRN-1", "100% Smith", "0%", True),
    ("MRN-1", "Smith", "%", False),
    ("A\\B", "x", "a\\", True),  # a backslash is a character, not an escape
    ("MRN-1", "Ada Smith", "MRN-1 Ada", False),  # across identifier and name: neither
])
def test_the_search_function_matches_as_istartswith_or_icontains(identifier, name, query, matches):
    if connection.vendor != "postgresql":
        pytest.skip("[needs-service] the function is PostgreSQL's (migration 0008)")
    with connection.cursor() as cursor:
        cursor.execute("SELECT patient_search_matches(%s, %s, %s)", [identifier, name, query])
        assert cursor.fetchone()[0] is matches


def test_a_common_name_is_read_with_the_function_only_for_a_user_of_one_clinic(clinician, six_smiths, other_clinic):
    """The name-index walk the function is there for needs one clinic id (PostgreSQL 15 cannot walk
    the index in name order across several); for anyone else the function would only cost a call per match."""
    from clinic.selectors import patient_search
    from tests.factories import MembershipFactory

    if connection.vendor != "postgresql":
        pytest.skip("[needs-service] the function is PostgreSQL's (migration 0008)")
    one_clinic = patient_search(clinician, "smith", cap=3)
    assert one_clinic.more and "patient_search_matches" in str(one_clinic.patients.query)
    assert "patient_search_matches" not in str(patient_search(clinician, "smith", cap=6).patients.query)  # not common
    MembershipFactory(user=clinician, clinic=other_clinic)
    del clinician._clinic_ids  # the clinic ids are kept on the user for the request
    two_clinics = patient_search(clinician, "smith", cap=3)
    assert two_clinics.more and "patient_search_matches" not in str(two_clinics.patients.query)
    assert len(list(two_clinics.patients)) == 7
