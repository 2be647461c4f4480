"""The case page's body and the patient page's lesions are cached per process under the clinic's
data generation (lesions.presentation.case_body_html, patient_lesions_html), as the worklist is:
every kind of write that changes what they show must show on the next request, clinics never
share an entry, the access check and the audit row come before any cache read, and every form
carries the requesting session's own CSRF token. Each write test compares the page served after
the write with one rendered from an empty cache: without the trigger that counts that write, the
first is the stale cached page."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clinic.models import AuditEvent, Patient
from lesions import analysis as pipeline
from lesions import notes, services, similar
from lesions.models import Analysis, Capture, Histopathology, Lesion
from tests.factories import LesionFactory, MembershipFactory, UserFactory, analysed, lesion_image

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("data_generation_kept")]

TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def main_part(client: Client, url: str) -> str:
    """What the page shows inside <main>, each CSRF token replaced by one placeholder (a fresh
    token is masked differently on every request)."""
    response = client.get(url)
    assert response.status_code == 200
    content = response.content.decode()
    main = content[content.index('<main id="main">'):content.index("</main>")]
    return TOKEN.sub('name="csrfmiddlewaretoken" value="TOKEN"', main)


def uncached_part(client: Client, url: str) -> str:
    caches["page_parts"].clear()
    caches["template_fragments"].clear()  # the capture cards' own cache too: the page from scratch
    return main_part(client, url)


def case_url(lesion: Lesion) -> str:
    return reverse("lesion_case", args=[lesion.pk])


def patient_url(patient: Patient) -> str:
    return reverse("patient_detail", args=[patient.pk])


def records_read(queries: CaptureQueriesContext) -> list[str]:
    """The queries that read captures, analyses or histopathology (the cached part's records)."""
    return [q["sql"] for q in queries.captured_queries
            if any(table in q["sql"] for table in ('"lesions_capture"', '"lesions_analysis"', '"lesions_histopathology"'))]


@pytest.fixture
def case(lesion) -> dict:
    """A lesion with a finished analysis, a failed one and a queued one, a review booked in a week."""
    Lesion.objects.filter(pk=lesion.pk).update(next_review_date=timezone.localdate() + timedelta(days=7))
    lesion.refresh_from_db()
    done = analysed(lesion, probability=0.81)
    failed = analysed(lesion, probability=None, status="failed", error="decoder broke")
    queued = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image()).analyses.get()
    return {"lesion": lesion, "done": done, "failed": failed, "queued": queued}


def test_a_second_case_page_is_served_from_the_cache_and_still_audited(client_logged_in, case):
    url = case_url(case["lesion"])
    first = main_part(client_logged_in, url)
    assert "0.81" in first and "decoder broke" in first
    views = AuditEvent.objects.filter(action=AuditEvent.Action.VIEW, object_id=str(case["lesion"].pk)).count()
    with CaptureQueriesContext(connection) as queries:
        second = main_part(client_logged_in, url)
    assert second == first
    assert not records_read(queries), "the case page's records were read again"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.VIEW,
                                     object_id=str(case["lesion"].pk)).count() == views + 1


def _new_capture(case, clinician):
    services.capture_create(request=None, user=clinician, lesion=case["lesion"], data=lesion_image())


def _analysis_finished(case, clinician):
    Analysis.objects.filter(pk=case["queued"].pk).update(status=Analysis.Status.DONE, probability=0.66,
                                                         threshold=0.3, finished_at=timezone.now())


def _finished_analysis_edited(case, clinician):
    # As the admin may: a finished row's score changed in place, its finish time untouched.
    Analysis.objects.filter(pk=case["done"].pk).update(probability=0.42)


def _running(case, clinician):
    Analysis.objects.filter(pk=case["queued"].pk).update(status=Analysis.Status.RUNNING)


def _analysis_failed(case, clinician):
    pipeline.mark_failed(case["queued"].pk, "worker ran out of memory")


def _retried(case, clinician):
    services.analysis_retry(request=None, user=clinician, analysis=case["failed"])


def _assessed(case, clinician):
    lesion = case["lesion"]
    lesion.clinical_diagnosis, lesion.decision = "dysplastic naevus", Lesion.Decision.EXCISE
    services.lesion_update(request=None, user=clinician, lesion=lesion, changed=["clinical_diagnosis", "decision"])


def _histopathology_added(case, clinician):
    services.histopathology_record(request=None, user=clinician, changed=[],
                                   histopathology=Histopathology(lesion=case["lesion"], in_situ=True))


def _histopathology_exists(case, clinician):
    Histopathology.objects.create(lesion=case["lesion"], in_situ=True)


def _histopathology_edited(case, clinician):
    Histopathology.objects.filter(lesion=case["lesion"]).update(in_situ=False, breslow_mm=1.4, ulceration=True)


def _histopathology_deleted(case, clinician):
    Histopathology.objects.filter(lesion=case["lesion"]).delete()


def _lesion_renamed(case, clinician):
    Lesion.objects.filter(pk=case["lesion"].pk).update(label="Renamed naevus")


def _review_moved(case, clinician):
    Lesion.objects.filter(pk=case["lesion"].pk).update(next_review_date=timezone.localdate() + timedelta(days=90))


def _capture_quality_flagged(case, clinician):
    Capture.objects.filter(pk=case["done"].capture_id).update(quality={"issues": [{"code": "blur",
                                                                                   "reason": "blurred"}]})


def _structures_saved(case, clinician):
    services.capture_set_structures(request=None, user=clinician, capture=case["done"].capture,
                                    structures=["streaks"], melanocytic=True)


def _capture_deleted(case, clinician):
    services.capture_delete(request=None, user=clinician, capture=case["done"].capture)


def _analysis_deleted(case, clinician):
    services.analysis_delete(request=None, user=clinician, analysis=case["failed"])


def _patient_renamed(case, clinician):
    Patient.objects.filter(pk=case["lesion"].patient_id).update(name="Renamed Patient")


# Each write, after the state it starts from (None: the `case` fixture's).
CASE_WRITES = {
    "new capture": (None, _new_capture),
    "analysis finished": (None, _analysis_finished),
    "analysis failed": (_running, _analysis_failed),
    "analysis retried": (None, _retried),
    "assessment": (None, _assessed),
    "histopathology added": (None, _histopathology_added),
    "histopathology edited": (_histopathology_exists, _histopathology_edited),
    "histopathology deleted": (_histopathology_exists, _histopathology_deleted),
    "lesion renamed": (None, _lesion_renamed),
    "review date moved": (None, _review_moved),
    "capture quality flagged": (None, _capture_quality_flagged),
    "structures saved": (None, _structures_saved),
    "capture deleted": (None, _capture_deleted),
    "analysis deleted": (None, _analysis_deleted),
    "patient renamed": (None, _patient_renamed),
    "finished analysis edited in place": (None, _finished_analysis_edited),
}


@pytest.mark.parametrize("name", list(CASE_WRITES))
def test_every_kind_of_write_shows_on_the_next_case_page(client_logged_in, clinician, case, name):
    setup, write = CASE_WRITES[name]
    if setup:
        setup(case, clinician)
    url = case_url(case["lesion"])
    before = main_part(client_logged_in, url)  # now cached
    assert main_part(client_logged_in, url) == before
    write(case, clinician)
    after = main_part(client_logged_in, url)
    assert after != before, "the write should change what the page shows"
    assert after == uncached_part(client_logged_in, url), "a stale page was served from the cache"


@pytest.fixture
def patient_lesions(patient) -> dict:
    today = timezone.localdate()
    scored = LesionFactory(patient=patient, label="Scored mole", next_review_date=today + timedelta(days=5))
    return {"scored": scored, "done": analysed(scored, probability=0.42),
            "unscored": LesionFactory(patient=patient, label="Unscored mole")}


def _lesion_added(work, clinician):
    LesionFactory(patient=work["scored"].patient, label="Newly added mole")


def _patient_lesion_renamed(work, clinician):
    Lesion.objects.filter(pk=work["unscored"].pk).update(label="Renamed mole")


def _new_score(work, clinician):
    analysed(work["unscored"], probability=0.93)


def _score_failed(work, clinician):
    # A finished analysis turned failed, as the sweep writes (QuerySet.update(): no signal).
    Analysis.objects.filter(pk=work["done"].pk).update(status=Analysis.Status.FAILED, error="lost its result")


def _patient_analysis_deleted(work, clinician):
    services.analysis_delete(request=None, user=clinician, analysis=work["done"])


def _patient_capture_deleted(work, clinician):
    services.capture_delete(request=None, user=clinician, capture=work["done"].capture)


def _patient_lesion_deleted(work, clinician):
    services.lesion_delete(request=None, user=clinician, lesion=work["unscored"])


def _decision(work, clinician):
    Lesion.objects.filter(pk=work["scored"].pk).update(decision=Lesion.Decision.EXCISE, status=Lesion.Status.EXCISED)


def _placed_on_the_map(work, clinician):
    Lesion.objects.filter(pk=work["unscored"].pk).update(body_map_view="back", body_map_x=0.4, body_map_y=0.3)


def _patient_review_moved(work, clinician):
    Lesion.objects.filter(pk=work["scored"].pk).update(next_review_date=timezone.localdate() - timedelta(days=2))


def _patient_itself_renamed(work, clinician):
    Patient.objects.filter(pk=work["scored"].patient_id).update(name="Renamed Patient")


PATIENT_WRITES = {
    "another lesion added": _lesion_added,
    "lesion renamed": _patient_lesion_renamed,
    "new analysed capture": _new_score,
    "analysis failed": _score_failed,
    "analysis deleted": _patient_analysis_deleted,
    "capture deleted": _patient_capture_deleted,
    "lesion deleted": _patient_lesion_deleted,
    "decision and status": _decision,
    "placed on the body map": _placed_on_the_map,
    "review date moved": _patient_review_moved,
    "patient renamed": _patient_itself_renamed,
}


def test_a_second_patient_page_is_served_from_the_cache_and_still_audited(client_logged_in, patient,
                                                                           patient_lesions):
    url = patient_url(patient)
    first = main_part(client_logged_in, url)
    assert "Scored mole" in first and "0.42" in first and "Unscored mole" in first
    views = AuditEvent.objects.filter(action=AuditEvent.Action.VIEW, object_id=str(patient.pk)).count()
    with CaptureQueriesContext(connection) as queries:
        second = main_part(client_logged_in, url)
    assert second == first
    assert not [q for q in queries.captured_queries if '"lesions_' in q["sql"]], "the lesions were read again"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.VIEW, object_id=str(patient.pk)).count() == views + 1


@pytest.mark.parametrize("name", list(PATIENT_WRITES))
def test_every_kind_of_write_shows_on_the_next_patient_page(client_logged_in, clinician, patient, patient_lesions,
                                                            name):
    url = patient_url(patient)
    before = main_part(client_logged_in, url)  # now cached
    assert main_part(client_logged_in, url) == before
    PATIENT_WRITES[name](patient_lesions, clinician)
    after = main_part(client_logged_in, url)
    assert after != before, "the write should change what the page shows"
    assert after == uncached_part(client_logged_in, url), "a stale page was served from the cache"


def test_clinics_never_share_an_entry_and_count_their_own_writes(client_logged_in, clinician, case, other_clinic,
                                                                 other_lesion):
    MembershipFactory(user=clinician, clinic=other_clinic)
    analysed(other_lesion, probability=0.27)
    own, other = case_url(case["lesion"]), case_url(other_lesion)
    own_page, other_page = main_part(client_logged_in, own), main_part(client_logged_in, other)
    assert "Left shoulder naevus" in own_page and "Other clinic lesion" not in own_page
    assert "Other clinic lesion" in other_page and "Left shoulder naevus" not in other_page
    Lesion.objects.filter(pk=other_lesion.pk).update(label="Renamed elsewhere")
    with CaptureQueriesContext(connection) as queries:
        assert main_part(client_logged_in, own) == own_page
    assert not records_read(queries), "a write in another clinic emptied this clinic's cache"
    assert "Renamed elsewhere" in main_part(client_logged_in, other)
    other_patient_page = main_part(client_logged_in, patient_url(other_lesion.patient))
    assert "Renamed elsewhere" in other_patient_page and "Left shoulder naevus" not in other_patient_page


def test_the_access_check_comes_before_the_cache(client_logged_in, other_clinic_clinician, case, patient):
    main_part(client_logged_in, case_url(case["lesion"]))  # cached for the clinic's own clinician
    main_part(client_logged_in, patient_url(patient))
    outsider = Client()
    outsider.force_login(other_clinic_clinician)
    assert outsider.get(case_url(case["lesion"])).status_code == 404
    assert outsider.get(patient_url(patient)).status_code == 404


def test_each_session_posts_with_its_own_token_after_a_cached_page(clinician, clinic, case):
    colleague = UserFactory(username="carol")
    MembershipFactory(user=colleague, clinic=clinic)
    url = case_url(case["lesion"])
    tokens = {}
    for user in (clinician, colleague):
        client = Client(enforce_csrf_checks=True)
        client.force_login(user)
        content = client.get(url).content.decode()
        body = content[content.index('<main id="main">'):content.index("</main>")]
        in_body = TOKEN.findall(body)
        # upload, assessment, histopathology, and the structures form of the finished (dermoscopic) capture
        assert len(in_body) == 4 and len(set(in_body)) == 1, in_body
        tokens[user.username] = (client, in_body[0])
    assert tokens["alice"][1] != tokens["carol"][1]
    carol, carols_token = tokens["carol"]
    refused = carol.post(reverse("lesion_assessment", args=[case["lesion"].pk]),
                         {"csrfmiddlewaretoken": tokens["alice"][1], "decision": "monitor", "status": "monitoring"})
    assert refused.status_code == 403, "another session's token was accepted"
    for name, (client, token) in tokens.items():
        response = client.post(reverse("lesion_assessment", args=[case["lesion"].pk]),
                               {"csrfmiddlewaretoken": token, "clinical_diagnosis": f"seen by {name}",
                                "decision": "monitor", "status": "monitoring"})
        assert response.status_code == 302, response.content.decode()[:500]
        assert f"seen by {name}" in main_part(client, url)
    structures = carol.post(reverse("capture_structures", args=[case["done"].capture_id]),
                            {"csrfmiddlewaretoken": carols_token, "structures": ["streaks"]})
    assert structures.status_code == 302


def test_a_form_with_errors_is_shown_once_and_not_cached(client_logged_in, case):
    url = case_url(case["lesion"])
    main_part(client_logged_in, url)
    response = client_logged_in.post(reverse("lesion_histopathology", args=[case["lesion"].pk]),
                                     {"breslow_mm": "-3"})
    assert response.status_code == 400 and 'data-role="error-summary"' in response.content.decode()
    assert "-3" not in main_part(client_logged_in, url).split('id="histopathology"')[1]


@pytest.mark.any_database
def test_without_a_data_generation_nothing_is_cached(client_logged_in, case, patient, monkeypatch):
    """SQLite (the laptop default) has no triggers to keep the data generation: there, every
    request reads the records, and a write shows whatever it is."""
    monkeypatch.setattr(connection, "vendor", "sqlite")
    for url in (case_url(case["lesion"]), patient_url(patient)):
        main_part(client_logged_in, url)
        with CaptureQueriesContext(connection) as queries:
            main_part(client_logged_in, url)
        assert records_read(queries), f"{url} was served from a cache"
    Analysis.objects.filter(pk=case["queued"].pk).update(status=Analysis.Status.DONE, probability=0.55,
                                                         threshold=0.3, finished_at=timezone.now())
    assert "0.55" in main_part(client_logged_in, case_url(case["lesion"]))
    assert "0.55" in main_part(client_logged_in, patient_url(patient))
    assert caches["page_parts"].get(f"case:{patient.clinic_id}:{case['lesion'].pk}") is None


def test_the_day_is_part_of_both_keys(client_logged_in, case, patient, monkeypatch):
    today = timezone.localdate()
    assert "overdue" not in main_part(client_logged_in, case_url(case["lesion"]))
    assert "overdue" not in main_part(client_logged_in, patient_url(patient))
    monkeypatch.setattr(timezone, "localdate", lambda *args, **kwargs: today + timedelta(days=8))
    assert "overdue" in main_part(client_logged_in, case_url(case["lesion"]))  # with no write
    assert "overdue" in main_part(client_logged_in, patient_url(patient))


def test_the_assessors_name_is_part_of_the_key(client_logged_in, clinician, case):
    _assessed(case, clinician)
    assert "by alice" in main_part(client_logged_in, case_url(case["lesion"]))
    get_user_model().objects.filter(pk=clinician.pk).update(username="alice.smith")  # no trigger counts users
    assert "by alice.smith" in main_part(client_logged_in, case_url(case["lesion"]))


def test_a_new_model_manifest_or_similar_index_builds_the_page_again(client_logged_in, case, monkeypatch):
    url = case_url(case["lesion"])
    main_part(client_logged_in, url)
    similar.forget_indexes()  # as a rebuilt index does: its similar cases may differ with no write
    with CaptureQueriesContext(connection) as queries:
        main_part(client_logged_in, url)
    assert records_read(queries), "a page built with an older similar-cases index was served"
    assert notes.current_manifest() is not None
    monkeypatch.setattr(notes, "current_manifest", lambda: None)  # shipped models gone: older rows read otherwise
    with CaptureQueriesContext(connection) as queries:
        main_part(client_logged_in, url)
    assert records_read(queries), "a page built under another model manifest was served"


def test_a_cached_case_page_asks_for_similar_cases_again_once_the_index_may_be_rebuilt(client_logged_in, case,
                                                                                     monkeypatch, settings):
    """The similar-cases index is rebuilt, when older than SIMILAR_INDEX_MAX_AGE_S, only when a page
    asks for it: a cached body must not keep an old index's cases for longer than that."""
    url = case_url(case["lesion"])
    main_part(client_logged_in, url)
    with CaptureQueriesContext(connection) as queries:
        main_part(client_logged_in, url)
    assert not records_read(queries)
    later = time.time() + settings.SIMILAR_INDEX_MAX_AGE_S
    monkeypatch.setattr(time, "time", lambda: later)
    with CaptureQueriesContext(connection) as queries:
        main_part(client_logged_in, url)
    assert records_read(queries), "a body built before the index could be rebuilt was served"
