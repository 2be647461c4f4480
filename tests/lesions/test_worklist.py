"""The worklist home page: what waits for the clinician, per clinic, in constant queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clinic.models import AuditEvent
from lesions import selectors
from lesions.models import Analysis, Histopathology, Lesion
from tests.factories import LesionFactory, MembershipFactory, PatientFactory, analysed
from tests.support.heap_order import read_in_table_order, scramble_table_order

pytestmark = pytest.mark.django_db


def section(response, key: str):
    return next(s for s in response.context["sections"] if s.key == key)


def test_the_home_page_is_the_worklist_and_needs_login(client, client_logged_in):
    assert client.get("/").status_code == 302
    response = client_logged_in.get("/")
    assert response.status_code == 200
    assert [s.key for s in response.context["sections"]] == ["unassessed", "failed", "recalls", "histopathology"]
    content = response.content.decode()
    assert "No analysis waits for review." in content and "No follow-up is due" in content


def test_unassessed_analyses_come_highest_score_first_and_leave_once_assessed(client_logged_in, patient, clinician):
    low, high = LesionFactory(patient=patient, label="low"), LesionFactory(patient=patient, label="high")
    analysed(low, probability=0.1)
    analysed(high, probability=0.9)
    unassessed = section(client_logged_in.get("/"), "unassessed")
    assert unassessed.count == 2
    assert [a.capture.lesion.label for a in unassessed.items] == ["high", "low"]

    client_logged_in.post(reverse("lesion_assessment", args=[high.pk]),
                          {"clinical_diagnosis": "naevus", "decision": "reassure", "status": "monitoring"})
    unassessed = section(client_logged_in.get("/"), "unassessed")
    assert [a.capture.lesion.label for a in unassessed.items] == ["low"]

    analysed(high, probability=0.95)  # a newer capture after the assessment waits for review again
    assert [a.capture.lesion.label for a in section(client_logged_in.get("/"), "unassessed").items] == ["high", "low"]


def test_only_the_newest_analysis_of_a_capture_counts(client_logged_in, lesion):
    analysis = analysed(lesion, status="failed", error="model crashed")
    Analysis.objects.create(capture=analysis.capture, model_version="newer", status="done", probability=0.4)
    response = client_logged_in.get("/")
    assert section(response, "failed").count == 0
    assert section(response, "unassessed").count == 1


def test_failed_analyses_show_the_reason_and_a_retry_that_requeues(client_logged_in, lesion):
    failed = analysed(lesion, status="failed", error="The stored image cannot be decoded.")
    response = client_logged_in.get("/")
    assert section(response, "failed").items == [failed]
    content = response.content.decode()
    assert "The stored image cannot be decoded." in content
    assert reverse("analysis_retry", args=[failed.pk]) in content

    response = client_logged_in.post(reverse("analysis_retry", args=[failed.pk]), {"next": "/"})
    assert response.status_code == 302 and response.url == "/"
    failed.refresh_from_db()
    assert failed.status == Analysis.Status.QUEUED and failed.error == ""
    assert AuditEvent.objects.filter(object_type="Analysis", object_id=str(failed.pk), action="change").exists()
    assert section(client_logged_in.get("/"), "failed").count == 0


def test_retry_refuses_another_clinics_analysis_and_get(client_logged_in, other_lesion):
    foreign = analysed(other_lesion, status="failed", error="x")
    assert client_logged_in.post(reverse("analysis_retry", args=[foreign.pk])).status_code == 404
    assert client_logged_in.get(reverse("analysis_retry", args=[foreign.pk])).status_code == 405
    foreign.refresh_from_db()
    assert foreign.status == "failed"


def test_retry_ignores_an_offsite_next(client_logged_in, lesion):
    failed = analysed(lesion, status="failed", error="x")
    response = client_logged_in.post(reverse("analysis_retry", args=[failed.pk]), {"next": "//evil.example/"})
    assert response.url == reverse("worklist")


def test_follow_ups_due_and_overdue_are_listed_and_flagged(client_logged_in, patient):
    today = timezone.localdate()
    LesionFactory(patient=patient, label="overdue", next_review_date=today - timedelta(days=3))
    LesionFactory(patient=patient, label="due", next_review_date=today + timedelta(days=5))
    LesionFactory(patient=patient, label="later", next_review_date=today + timedelta(days=60))
    LesionFactory(patient=patient, label="closed", next_review_date=today - timedelta(days=3), status="closed")
    response = client_logged_in.get("/")
    recalls = section(response, "recalls")
    assert [(lesion.label, lesion.recall_state) for lesion in recalls.items] == [("overdue", "overdue"),
                                                                                 ("due", "due")]
    content = response.content.decode()
    assert 'class="recall-overdue"' in content and "badge bad\">overdue" in content


def test_biopsy_or_excision_without_histopathology(client_logged_in, patient):
    waiting = LesionFactory(patient=patient, label="waiting", decision="excise")
    done = LesionFactory(patient=patient, label="reported", decision="biopsy")
    Histopathology.objects.create(lesion=done, in_situ=True)
    LesionFactory(patient=patient, label="monitored", decision="monitor")
    items = section(client_logged_in.get("/"), "histopathology").items
    assert items == [waiting]


def test_another_clinics_work_never_shows_and_clinic_choice_is_scoped(client_logged_in, clinician, other_lesion,
                                                                     other_clinic):
    analysed(other_lesion, probability=0.99)
    response = client_logged_in.get("/")
    assert all(s.count == 0 for s in response.context["sections"])
    assert client_logged_in.get("/", {"clinic": other_clinic.pk}).status_code == 404
    MembershipFactory(user=clinician, clinic=other_clinic)
    response = client_logged_in.get("/", {"clinic": other_clinic.pk})
    assert section(response, "unassessed").count == 1


def test_a_clinician_without_a_clinic_sees_a_designed_empty_state(client):
    from tests.factories import UserFactory

    client.force_login(UserFactory(username="lonely"))
    response = client.get("/")
    assert response.status_code == 200
    assert "not a member of any clinic" in response.content.decode()


def populate(patient, n: int) -> None:
    today = timezone.localdate()
    for i in range(n):
        lesion = LesionFactory(patient=patient, next_review_date=today - timedelta(days=i),
                               decision="excise" if i % 2 else "monitor")
        analysed(lesion, probability=i / (n + 1))
        analysed(lesion, status="failed", error="x")


def test_the_worklist_runs_in_constant_queries(client_logged_in, patient, django_assert_num_queries):
    populate(patient, 1)
    with CaptureQueriesContext(connection) as one:
        assert client_logged_in.get("/").status_code == 200
    populate(PatientFactory(clinic=patient.clinic), 30)
    with django_assert_num_queries(len(one)):
        response = client_logged_in.get("/")
    assert all(s.count > 1 for s in response.context["sections"])


def test_worklist_queries_use_indexes_not_table_scans(clinic):
    """With sequential scans priced out, no section's query reads a whole table (on tiny test tables
    PostgreSQL would rightly scan; this checks that indexes exist that serve every query)."""
    if connection.vendor != "postgresql":
        pytest.skip("index plans are PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    plans = {key: queryset.explain() for key, queryset in
             selectors.worklist_querysets(clinic.pk, timezone.localdate()).items()}
    for key, plan in plans.items():
        assert "Seq Scan" not in plan, f"{key}: {plan}"
    assert "analysis_status_probability" in plans["unassessed"] or "analysis_capture_newest" in plans["unassessed"]


def test_counts_stop_at_the_cap_and_say_so(client_logged_in, patient, monkeypatch):
    monkeypatch.setattr(selectors, "COUNT_CAP", 3)
    for i in range(5):
        analysed(LesionFactory(patient=patient), probability=i / 10)
    response = client_logged_in.get("/")
    unassessed = section(response, "unassessed")
    assert (unassessed.count, unassessed.more, len(unassessed.items)) == (3, True, 5)
    assert "<strong>3+</strong> analyses to review" in response.content.decode()


def test_another_clinics_recalls_and_missing_histopathology_never_show(client_logged_in, other_patient):
    LesionFactory(patient=other_patient, next_review_date=timezone.localdate() - timedelta(days=1))
    LesionFactory(patient=other_patient, decision="excise")
    response = client_logged_in.get("/")
    assert (section(response, "recalls").count, section(response, "histopathology").count) == (0, 0)
    assert section(response, "recalls").items == [] and section(response, "histopathology").items == []


def test_exactly_the_cap_is_not_more(client_logged_in, patient, monkeypatch):
    monkeypatch.setattr(selectors, "COUNT_CAP", 3)
    for i in range(3):
        analysed(LesionFactory(patient=patient), probability=i / 10)
    unassessed = section(client_logged_in.get("/"), "unassessed")
    assert (unassessed.count, unassessed.more) == (3, False)


def test_only_finished_scores_of_monitored_lesions_wait_for_review(client_logged_in, patient):
    listed = analysed(LesionFactory(patient=patient, label="listed"), probability=0.4)
    analysed(LesionFactory(patient=patient, label="not analysable"), probability=0.7, status="not_analysable")
    analysed(LesionFactory(patient=patient, label="no score"), probability=None)  # nothing to review
    analysed(LesionFactory(patient=patient, label="excised", status="excised"), probability=0.9)
    assert section(client_logged_in.get("/"), "unassessed").items == [listed]


def test_each_section_keeps_its_order_whatever_the_order_of_entry(client_logged_in, patient):
    today = timezone.localdate()
    # Entered in the opposite order to the one each list must show.
    high = analysed(LesionFactory(patient=patient, label="high"), probability=0.9)
    tie_a = analysed(LesionFactory(patient=patient, label="tie a"), probability=0.5)
    tie_b = analysed(LesionFactory(patient=patient, label="tie b"), probability=0.5)
    late_failure = analysed(LesionFactory(patient=patient), probability=None, status="failed", error="x")
    early_failure = analysed(LesionFactory(patient=patient), probability=None, status="failed", error="y")
    Analysis.objects.filter(pk=early_failure.pk).update(finished_at=timezone.now() - timedelta(hours=1))
    soon = LesionFactory(patient=patient, next_review_date=today + timedelta(days=2))
    overdue = LesionFactory(patient=patient, next_review_date=today - timedelta(days=2))
    overdue_too = LesionFactory(patient=patient, next_review_date=today - timedelta(days=2))
    recent = LesionFactory(patient=patient, decision="excise", assessed_at=timezone.now())
    older = LesionFactory(patient=patient, decision="biopsy", assessed_at=timezone.now() - timedelta(days=7))
    older_too = LesionFactory(patient=patient, decision="biopsy", assessed_at=older.assessed_at)
    # Updates write new row versions: the table's own order is no longer the order of entry.
    Lesion.objects.filter(pk__in=[overdue.pk, older.pk]).update(clinical_diagnosis="naevus")
    Analysis.objects.filter(pk=tie_a.pk).update(error="")
    response = client_logged_in.get("/")
    assert section(response, "unassessed").items == [high, tie_b, tie_a]  # highest score, then newest
    assert section(response, "failed").items == [late_failure, early_failure]  # latest failure first
    assert section(response, "recalls").items == [overdue, overdue_too, soon]  # earliest review, then entry
    assert section(response, "histopathology").items == [older, older_too, recent]  # longest waiting first


def test_the_current_analysis_is_the_newest_queued_then_the_highest_id(client_logged_in, patient):
    later_queued = analysed(LesionFactory(patient=patient, label="later queued"), probability=0.6)
    rerun = Analysis.objects.create(capture=later_queued.capture, model_version="seg-b+cls-b", status="done",
                                    probability=0.2, threshold=0.3, finished_at=timezone.now())
    # The re-run has the higher id but was queued earlier (a clock step, a restored row): queue time decides.
    Analysis.objects.filter(pk=rerun.pk).update(queued_at=later_queued.queued_at - timedelta(minutes=5))
    same_time = analysed(LesionFactory(patient=patient, label="same time"), probability=0.5)
    twin = Analysis.objects.create(capture=same_time.capture, model_version="seg-b+cls-b", status="done",
                                   probability=0.4, threshold=0.3, finished_at=timezone.now())
    Analysis.objects.filter(pk=twin.pk).update(queued_at=same_time.queued_at)  # queued in the same instant
    assert section(client_logged_in.get("/"), "unassessed").items == [later_queued, twin]


def test_without_a_data_generation_nothing_is_cached(client_logged_in, lesion, clinic, monkeypatch):
    """SQLite (the laptop default) has no triggers to keep the data generation: there, every request
    reads the records (a write there advances nothing, so a cached page would go stale)."""
    from clinic.selectors import data_generation

    monkeypatch.setattr(connection, "vendor", "sqlite")
    assert data_generation(clinic.pk) is None
    analysed(lesion, probability=0.4)
    first = client_logged_in.get("/").content.decode()
    with CaptureQueriesContext(connection) as queries:
        second = client_logged_in.get("/").content.decode()
    assert "0.40" in first and "0.40" in second
    assert any("lesions_analysis" in q["sql"] for q in queries.captured_queries), "served from a cache"


# What the clinician reads in each section: its heading, and the sentence shown when it is empty.
SECTION_TEXTS = {
    "unassessed": ("Analyses to review", "No analysis waits for review."),
    "failed": ("Failed analyses", "No analysis has failed."),
    "recalls": ("Follow-ups due or overdue", "No follow-up is due in the next two weeks."),
    "histopathology": ("Biopsy or excision without histopathology", "Every biopsy and excision has its histopathology."),
}


def test_each_section_has_its_heading_and_its_empty_state(client_logged_in):
    content = client_logged_in.get("/").content.decode()
    for key, (title, empty) in SECTION_TEXTS.items():
        assert f'<h2 id="{key}-h">{title} <span class="count">(0)</span></h2>' in content
        assert f'<p class="empty">{empty}</p>' in content
        assert f"<strong>0</strong> {title.lower()}</a>" in content


def test_each_section_lists_at_most_its_limit_and_counts_the_rest(patient, clinic):
    today = timezone.localdate()
    for _ in range(3):
        analysed(LesionFactory(patient=patient), probability=0.5)
        analysed(LesionFactory(patient=patient), probability=None, status="failed", error="x")
        LesionFactory(patient=patient, next_review_date=today)
        LesionFactory(patient=patient, decision="excise", assessed_at=timezone.now())
    sections = selectors.worklist(clinic.pk, today, limit=2)
    assert [(s.key, s.count, len(s.items), s.more) for s in sections] == [
        (key, 3, 2, False) for key in SECTION_TEXTS]
    assert [(s.title, s.empty) for s in sections] == list(SECTION_TEXTS.values())


def test_ties_in_each_section_are_broken_by_entry_whatever_the_table_order(patient, clinic):
    today, now = timezone.localdate(), timezone.now()
    unassessed = [analysed(LesionFactory(patient=patient), probability=0.5) for _ in range(3)]
    failed = [analysed(LesionFactory(patient=patient), probability=None, status="failed", error="x") for _ in range(3)]
    Analysis.objects.filter(pk__in=[a.pk for a in failed]).update(finished_at=now)
    recalls = [LesionFactory(patient=patient, next_review_date=today) for _ in range(3)]
    waiting = [LesionFactory(patient=patient, decision="excise", assessed_at=now) for _ in range(3)]
    for rows in (unassessed, failed, recalls, waiting):
        scramble_table_order(rows)
    read_in_table_order()
    items = {s.key: s.items for s in selectors.worklist(clinic.pk, today)}
    # The same score or failure time: newest first; the same review or decision day: longest waiting first.
    assert items == {"unassessed": unassessed[::-1], "failed": failed[::-1], "recalls": recalls,
                     "histopathology": waiting}
