"""A patient search's count and rendered pages are kept per process under the user's clinics' data
generations (clinic.presentation.patient_search_page), like the worklist and the case page: going
back to a search's results neither searches nor reads the patients again, every write that changes
what the list shows (a clinic's rename included) shows on the next view, and clinics never share
an entry."""

from __future__ import annotations

import re

import pytest
from django.core.cache import caches
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clinic.models import AuditEvent, Clinic, Patient
from tests.factories import LesionFactory, MembershipFactory, PatientFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("data_generation_kept")]


@pytest.fixture
def smiths(clinic, other_clinic) -> list[Patient]:
    found = [PatientFactory(clinic=clinic, identifier=f"S-{n}", name=f"Smith {letter}")
             for n, letter in enumerate("ABCD")]
    LesionFactory(patient=found[0])
    PatientFactory(clinic=other_clinic, identifier="S-X", name="Smith Elsewhere")
    return found


def searched(client: Client, query: str) -> str:
    """The result page's address, as the search form's post redirects to it."""
    response = client.post(reverse("patient_list"), {"q": query})
    assert response.status_code == 302
    return response.url


def listed(client: Client, url: str) -> list[tuple[str, int]]:
    """Each listed patient's name and lesion count, in the list's order."""
    return shown(client, url)[0]


# A row of the list as the page shows it: identifier, linked name, date of birth, clinic, lesion count.
ROW = re.compile(r'<tr><td>[^<]*</td><td><a href="/patients/\d+/">([^<]+)</a></td>\s*'
                 r'<td>[^<]*</td><td>([^<]*)</td><td>(\d+)</td></tr>')


def shown_rows(client: Client, url: str) -> tuple[list[tuple[str, str, int]], int]:
    """Each listed patient's name, clinic and lesion count as the page shows them, in its order, and
    how many the page says match."""
    response = client.get(url)
    assert response.status_code == 200
    rows = [(name, clinic, int(count)) for name, clinic, count in ROW.findall(response.content.decode())]
    return rows, response.context["page"].paginator.count


def shown(client: Client, url: str) -> tuple[list[tuple[str, int]], int]:
    """The listed patients (as `listed`) and how many the page says match."""
    rows, count = shown_rows(client, url)
    return [(name, lesions) for name, _clinic, lesions in rows], count


def searches_run(queries: CaptureQueriesContext) -> list[str]:
    """The queries that search the patients table (the trigram condition), rather than read by key."""
    return [q["sql"] for q in queries.captured_queries if " LIKE " in q["sql"] and '"clinic_patient"' in q["sql"]]


def test_going_back_to_a_search_neither_searches_nor_reads_the_patients(client_logged_in, smiths):
    url = searched(client_logged_in, "smith")
    first = listed(client_logged_in, url)
    assert first == [("Smith A", 1), ("Smith B", 0), ("Smith C", 0), ("Smith D", 0)]
    with CaptureQueriesContext(connection) as queries:
        again = listed(client_logged_in, url)
    assert again == first
    assert not [q["sql"] for q in queries.captured_queries if '"clinic_patient"' in q["sql"]]
    content = client_logged_in.get(url).content.decode()
    assert "Smith A" in content and "S-0" in content and "Smith Elsewhere" not in content


def test_a_kept_page_with_no_match_still_escapes_the_search_text(client_logged_in, smiths):
    url = searched(client_logged_in, "<b>x")
    for _view in ("searched", "kept"):
        content = client_logged_in.get(url).content.decode()
        assert "No patients match “&lt;b&gt;x”" in content and "<b>x" not in content


def test_the_whole_list_and_a_page_past_the_end_are_kept_as_read(client_logged_in, smiths, monkeypatch):
    monkeypatch.setattr("clinic.views.PATIENTS_PER_PAGE", 3)
    whole = reverse("patient_list")
    assert listed(client_logged_in, whole) == [("Smith A", 1), ("Smith B", 0), ("Smith C", 0)]
    # A page number past the end shows the last page, under the last page's entry.
    assert listed(client_logged_in, f"{whole}?page=9") == [("Smith D", 0)]
    assert listed(client_logged_in, f"{whole}?page=2") == [("Smith D", 0)]
    assert listed(client_logged_in, whole) == [("Smith A", 1), ("Smith B", 0), ("Smith C", 0)]


def test_a_renamed_clinic_shows_on_the_next_view(client_logged_in, clinic, smiths):
    url = searched(client_logged_in, "smith")
    assert {row[1] for row in shown_rows(client_logged_in, url)[0]} == {clinic.name}  # now kept
    Clinic.objects.filter(pk=clinic.pk).update(name="Renamed Dermatology")
    rows, _count = shown_rows(client_logged_in, url)
    assert [row[1] for row in rows] == ["Renamed Dermatology"] * 4


def test_the_post_and_the_page_it_redirects_to_count_once(client_logged_in, smiths):
    with CaptureQueriesContext(connection) as queries:
        url = searched(client_logged_in, "smith")
        listed(client_logged_in, url)
    counts = [sql for sql in searches_run(queries) if sql.startswith("SELECT COUNT(*)")]
    assert len(counts) == 1, counts
    audit = AuditEvent.objects.get(action="search")
    assert audit.detail["results"] == 4


def test_a_search_run_afresh_reads_its_page_once(client_logged_in, smiths):
    url = searched(client_logged_in, "smith")
    with CaptureQueriesContext(connection) as queries:
        first = listed(client_logged_in, url)
    page_reads = [q["sql"] for q in queries.captured_queries
                  if q["sql"].startswith('SELECT "clinic_patient"."id", "clinic_patient"."clinic_id"')]
    assert first == [("Smith A", 1), ("Smith B", 0), ("Smith C", 0), ("Smith D", 0)]
    assert searches_run(queries), "the view was expected to search afresh"
    assert len(page_reads) == 1, page_reads  # the search's page, not read again by key


def _new_smith(clinic, other_clinic, smiths):
    PatientFactory(clinic=clinic, identifier="S-9", name="Smith AA")


def _renamed(clinic, other_clinic, smiths):
    Patient.objects.filter(pk=smiths[1].pk).update(name="Jones B")


def _deleted(clinic, other_clinic, smiths):
    Patient.objects.filter(pk=smiths[2].pk).delete()


def _lesion_added(clinic, other_clinic, smiths):
    LesionFactory(patient=smiths[3])


def _moved_away(clinic, other_clinic, smiths):
    Patient.objects.filter(pk=smiths[0].pk).update(clinic=other_clinic)


WRITES = {
    "a new patient matches": (_new_smith, [("Smith A", 1), ("Smith AA", 0), ("Smith B", 0),
                                           ("Smith C", 0), ("Smith D", 0)]),
    "a patient renamed": (_renamed, [("Smith A", 1), ("Smith C", 0), ("Smith D", 0)]),
    "a patient deleted": (_deleted, [("Smith A", 1), ("Smith B", 0), ("Smith D", 0)]),
    "a lesion added": (_lesion_added, [("Smith A", 1), ("Smith B", 0), ("Smith C", 0), ("Smith D", 1)]),
    "a patient moved to another clinic": (_moved_away, [("Smith B", 0), ("Smith C", 0), ("Smith D", 0)]),
}


@pytest.mark.parametrize("name", list(WRITES))
def test_every_write_that_changes_the_list_shows_on_the_next_view(client_logged_in, clinic, other_clinic, smiths,
                                                                  name):
    write, expected = WRITES[name]
    url = searched(client_logged_in, "smith")
    assert shown(client_logged_in, url)[1] == 4  # now kept
    write(clinic, other_clinic, smiths)
    assert shown(client_logged_in, url) == (expected, len(expected))
    caches["searches"].clear()
    assert shown(client_logged_in, url) == (expected, len(expected)), "the list differs from one read afresh"


def test_clinics_never_share_a_search(client_logged_in, other_clinic_clinician, smiths, monkeypatch):
    # Two clinics' generations may well be equal: the entry is still each clinic's own.
    monkeypatch.setattr("clinic.selectors.data_generations", lambda clinic_ids: (7,) * len(clinic_ids))
    listed(client_logged_in, searched(client_logged_in, "smith"))  # cached for clinic A
    other = Client()
    other.force_login(other_clinic_clinician)
    assert listed(other, searched(other, "smith")) == [("Smith Elsewhere", 0)]


def test_joining_a_clinic_widens_the_next_search(client_logged_in, clinician, other_clinic, smiths):
    # A membership is not a clinic record (no generation counts it): the user's clinics are in the key.
    url = searched(client_logged_in, "smith")
    assert len(listed(client_logged_in, url)) == 4
    MembershipFactory(user=clinician, clinic=other_clinic)
    assert [name for name, _ in listed(client_logged_in, url)] == [
        "Smith A", "Smith B", "Smith C", "Smith D", "Smith Elsewhere"]


def test_a_user_of_two_clinics_sees_a_write_in_either_and_reads_their_generations_at_once(
        client_logged_in, clinician, clinic, other_clinic, smiths):
    MembershipFactory(user=clinician, clinic=other_clinic)
    url = searched(client_logged_in, "smith")
    for write_in, name in ((other_clinic, "Smith Younger"), (clinic, "Smith Oldest")):
        assert len(listed(client_logged_in, url)) >= 5  # now kept
        with CaptureQueriesContext(connection) as queries:
            listed(client_logged_in, url)
        assert not searches_run(queries), "not kept"
        generation_reads = [q["sql"] for q in queries.captured_queries if '"clinic_datageneration"' in q["sql"]]
        assert len(generation_reads) == 1, generation_reads
        PatientFactory(clinic=write_in, identifier=f"S-{name}", name=name)
        assert name in [shown_name for shown_name, _ in listed(client_logged_in, url)]


def test_pages_of_a_search_are_kept_apart(client_logged_in, smiths, monkeypatch):
    monkeypatch.setattr("clinic.views.PATIENTS_PER_PAGE", 3)
    url = searched(client_logged_in, "smith")
    assert [n for n, _ in listed(client_logged_in, url)] == ["Smith A", "Smith B", "Smith C"]
    assert [n for n, _ in listed(client_logged_in, url + "&page=2")] == ["Smith D"]
    assert [n for n, _ in listed(client_logged_in, url)] == ["Smith A", "Smith B", "Smith C"]


@pytest.mark.any_database
def test_without_a_data_generation_the_search_runs_each_time(client_logged_in, smiths, monkeypatch):
    """SQLite (the laptop default) has no triggers to keep the data generation: there, every view
    searches (a write there advances nothing, so a kept page would go stale)."""
    from clinic.selectors import data_generation

    monkeypatch.setattr(connection, "vendor", "sqlite")
    assert data_generation(smiths[0].clinic_id) is None
    url = searched(client_logged_in, "smith")
    listed(client_logged_in, url)
    with CaptureQueriesContext(connection) as queries:
        assert len(listed(client_logged_in, url)) == 4
    assert searches_run(queries), "served from a cache"


def test_an_api_search_counts_a_patient_added_since(api_client, clinic, smiths):
    first = api_client.get("/api/v1/patients/", {"q": "smith"}).json()
    PatientFactory(clinic=clinic, identifier="S-9", name="Smith AA")
    again = api_client.get("/api/v1/patients/", {"q": "smith"}).json()
    assert (first["count"], again["count"]) == (4, 5)
    assert "Smith AA" in [patient["name"] for patient in again["results"]]
