"""The worklist is cached per clinic and day under the clinic's data generation (lesions.presentation.
worklist_html): every kind of write that can change the page must show on the next request, whoever
makes it (services, views, QuerySet.update() as the sweep does, deletions), and clinics never share
an entry. Each write test compares the page served after the write with a page rendered from an
empty cache: without the trigger that counts that write, the first is the stale cached page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clinic import services as clinic_services
from clinic.models import Clinic, Patient
from clinic.selectors import data_generation
from lesions import analysis as pipeline
from lesions import services
from lesions.models import Analysis, Capture, Histopathology, Lesion
from tests.factories import ClinicFactory, LesionFactory, MembershipFactory, PatientFactory, analysed

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("data_generation_kept")]


def worklist_part(client, **params) -> str:
    """The cached part of the page (the rest carries a fresh CSRF token on every request)."""
    content = client.get("/", params).content.decode()
    start, end = content.index('<nav aria-label="Worklist sections"'), content.index('<form id="worklist-retry"')
    return content[start:end]


def uncached_part(client, **params) -> str:
    caches["page_parts"].clear()
    return worklist_part(client, **params)


@pytest.fixture
def work(patient) -> dict:
    """One row in each section, every one with a name of its own in the page."""
    today = timezone.localdate()
    return {
        "unassessed": analysed(LesionFactory(patient=patient, label="Waiting naevus"), probability=0.8),
        "failed": analysed(LesionFactory(patient=patient, label="Broken capture"), probability=None,
                           status="failed", error="decoder broke"),
        "recall": LesionFactory(patient=patient, label="Due mole", next_review_date=today + timedelta(days=3)),
        "excision": LesionFactory(patient=patient, label="Excised mole", decision="excise",
                                  assessed_at=timezone.now()),
    }


def test_a_second_request_is_served_from_the_cache(client_logged_in, work):
    first = worklist_part(client_logged_in)
    assert "Waiting naevus" in first and "decoder broke" in first and "Due mole" in first and "Excised mole" in first
    with CaptureQueriesContext(connection) as queries:
        second = worklist_part(client_logged_in)
    assert second == first
    assert not [q for q in queries.captured_queries if "lesions_" in q["sql"]], "the worklist was queried again"


def _retry(work, clinician):
    services.analysis_retry(request=None, user=clinician, analysis=work["failed"])


def _sweep_style_update(work, clinician):
    # QuerySet.update() sends no signal: the sweep and the pipeline's retry path write this way.
    Analysis.objects.filter(pk=work["failed"].pk).update(status=Analysis.Status.QUEUED, error="")


def _running(work, clinician):
    Analysis.objects.filter(pk=work["unassessed"].pk).update(status=Analysis.Status.RUNNING)


def _marked_failed(work, clinician):
    pipeline.mark_failed(work["unassessed"].pk, "worker ran out of memory")


def _newer_analysis(work, clinician):
    # A re-analysis of the same capture replaces the shown score.
    Analysis.objects.create(capture=work["unassessed"].capture, model_version="newer", status="done",
                            probability=0.97, threshold=0.3, finished_at=timezone.now())


def _assessed(work, clinician):
    lesion = work["unassessed"].capture.lesion
    lesion.clinical_diagnosis, lesion.decision = "naevus", Lesion.Decision.REASSURE
    services.lesion_update(request=None, user=clinician, lesion=lesion, changed=["clinical_diagnosis", "decision"])


def _histopathology_recorded(work, clinician):
    services.histopathology_record(request=None, user=clinician, changed=[],
                                   histopathology=Histopathology(lesion=work["excision"], in_situ=True))


def _histopathology_exists(work, clinician):
    Histopathology.objects.create(lesion=work["excision"], in_situ=True)


def _histopathology_deleted(work, clinician):
    Histopathology.objects.filter(lesion=work["excision"]).delete()


def _review_date_moved(work, clinician):
    Lesion.objects.filter(pk=work["recall"].pk).update(next_review_date=timezone.localdate() + timedelta(days=90))


def _review_booked(work, clinician):
    LesionFactory(patient=work["recall"].patient, label="Newly booked", next_review_date=timezone.localdate())


def _lesion_renamed(work, clinician):
    Lesion.objects.filter(pk=work["excision"].pk).update(label="Renamed mole")


def _patient_renamed(work, clinician):
    Patient.objects.filter(pk=work["recall"].patient_id).update(name="Renamed Patient")


def _capture_quality_flagged(work, clinician):
    Capture.objects.filter(pk=work["unassessed"].capture_id).update(
        quality={"issues": [{"code": "blur", "reason": "blurred"}]})


def _analysis_deleted(work, clinician):
    services.analysis_delete(request=None, user=clinician, analysis=work["failed"])


def _capture_deleted(work, clinician):
    services.capture_delete(request=None, user=clinician, capture=work["unassessed"].capture)


def _lesion_deleted(work, clinician):
    services.lesion_delete(request=None, user=clinician, lesion=work["excision"])


def _patient_deleted(work, clinician):
    clinic_services.patient_delete(request=None, user=clinician, patient=work["recall"].patient)


# Each write, after the state it starts from (None: the `work` fixture's).
WRITES = {
    "retry": (None, _retry),
    "sweep-style QuerySet.update": (None, _sweep_style_update),
    "pipeline marks a running analysis failed": (_running, _marked_failed),
    "re-analysis inserted": (None, _newer_analysis),
    "assessment": (None, _assessed),
    "histopathology recorded": (None, _histopathology_recorded),
    "histopathology deleted": (_histopathology_exists, _histopathology_deleted),
    "review date moved": (None, _review_date_moved),
    "review booked on a new lesion": (None, _review_booked),
    "lesion renamed": (None, _lesion_renamed),
    "patient renamed": (None, _patient_renamed),
    "capture quality flagged": (None, _capture_quality_flagged),
    "analysis deleted": (None, _analysis_deleted),
    "capture deleted": (None, _capture_deleted),
    "lesion deleted": (None, _lesion_deleted),
    "patient deleted": (None, _patient_deleted),
}


@pytest.mark.parametrize("name", list(WRITES))
def test_every_kind_of_write_shows_on_the_next_request(client_logged_in, clinician, work, name):
    setup, write = WRITES[name]
    if setup:
        setup(work, clinician)
    before = worklist_part(client_logged_in)  # now cached
    write(work, clinician)
    after = worklist_part(client_logged_in)
    assert after != before, "the write should change what the page shows"
    assert after == uncached_part(client_logged_in), "a stale page was served from the cache"


def test_a_write_that_changes_nothing_counts_no_change(work, clinic):
    generation = data_generation(clinic.pk)
    Analysis.objects.filter(pk=-1).update(status=Analysis.Status.QUEUED)
    assert data_generation(clinic.pk) == generation
    Analysis.objects.filter(pk=work["failed"].pk).update(error="still broken")
    assert data_generation(clinic.pk) == generation + 1


def test_clinics_never_share_the_cache_and_count_their_own_writes(client_logged_in, clinician, clinic, work,
                                                                   other_clinic, other_lesion):
    MembershipFactory(user=clinician, clinic=other_clinic)
    analysed(other_lesion, probability=0.9)
    own = worklist_part(client_logged_in, clinic=clinic.pk)
    other = worklist_part(client_logged_in, clinic=other_clinic.pk)
    assert "Waiting naevus" in own and "Other clinic lesion" not in own
    assert "Other clinic lesion" in other and "Waiting naevus" not in other
    assert worklist_part(client_logged_in, clinic=clinic.pk) == own

    generation = data_generation(clinic.pk)
    Lesion.objects.filter(pk=other_lesion.pk).update(label="Renamed elsewhere")
    assert data_generation(clinic.pk) == generation
    assert "Renamed elsewhere" in worklist_part(client_logged_in, clinic=other_clinic.pk)


def test_a_record_moved_between_clinics_changes_both(client_logged_in, clinician, clinic, work, other_clinic):
    MembershipFactory(user=clinician, clinic=other_clinic)
    worklist_part(client_logged_in, clinic=clinic.pk)
    worklist_part(client_logged_in, clinic=other_clinic.pk)
    Patient.objects.filter(pk=work["excision"].patient_id).update(clinic=other_clinic)
    for chosen in (clinic, other_clinic):
        after = worklist_part(client_logged_in, clinic=chosen.pk)
        assert after == uncached_part(client_logged_in, clinic=chosen.pk)
    assert "Excised mole" in after


def test_the_day_is_part_of_the_key(client_logged_in, patient, monkeypatch):
    today = timezone.localdate()
    LesionFactory(patient=patient, label="Later mole", next_review_date=today + timedelta(days=30))
    assert "Later mole" not in worklist_part(client_logged_in)
    monkeypatch.setattr(timezone, "localdate", lambda *args, **kwargs: today + timedelta(days=20))
    assert "Later mole" in worklist_part(client_logged_in)  # due within two weeks now, with no write


def test_a_clinic_counts_its_creation_its_rename_and_its_patients(clinician):
    clinic = ClinicFactory(name="Fresh clinic")
    assert data_generation(clinic.pk) == 1
    Clinic.objects.filter(pk=clinic.pk).update(name="Renamed clinic")  # pages and search rows show it
    assert data_generation(clinic.pk) == 2
    PatientFactory(clinic=clinic)
    assert data_generation(clinic.pk) == 3


def test_the_retry_button_posts_the_page_form_with_its_token_and_way_back(client_logged_in, clinic, work):
    content = client_logged_in.get("/", {"clinic": clinic.pk}).content.decode()
    retry = reverse("analysis_retry", args=[work["failed"].pk])
    assert f'form="worklist-retry" formaction="{retry}"' in content
    form = content[content.index('<form id="worklist-retry"'):]
    form = form[:form.index("</form>")]
    assert 'name="csrfmiddlewaretoken"' in form and f'name="next" value="/?clinic={clinic.pk}"' in form
