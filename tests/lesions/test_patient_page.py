"""Patient page: every lesion with thumbnail, status, next review and score trend; printable summary."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clinic.models import AuditEvent
from lesions import services
from lesions.models import Analysis
from tests.factories import LesionFactory, lesion_image
from tests.support.heap_order import read_in_table_order, scramble_table_order

pytestmark = pytest.mark.django_db


def scored(lesion, probabilities):
    for i, p in enumerate(probabilities):
        capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image(),
                                          taken_at=timezone.now() - timedelta(days=100 - i))
        Analysis.objects.filter(capture=capture).update(status="done", probability=p, threshold=0.3)


def test_lesion_rows_show_trend_latest_score_and_review(client_logged_in, patient):
    lesion = LesionFactory(patient=patient, label="Growing", next_review_date=timezone.localdate() - timedelta(1))
    scored(lesion, [0.1, 0.2, 0.45])
    LesionFactory(patient=patient, label="Fresh")
    response = client_logged_in.get(reverse("patient_detail", args=[patient.pk]))
    content = response.content.decode()
    assert 'aria-label="Scores over time: 0.10, 0.20, 0.45"' in content
    assert '<span class="score above">0.45</span>' in content
    assert "badge bad\">overdue" in content
    assert "no score" in content  # the lesion without captures
    rows = {lesion.label: lesion for lesion in response.context["lesions"]}
    assert rows["Growing"].marker_class == "score-high" and rows["Fresh"].marker_class == "score-none"


def test_patient_page_queries_do_not_grow_with_captures(client_logged_in, patient):
    scored(LesionFactory(patient=patient), [0.1])
    with CaptureQueriesContext(connection) as one:
        client_logged_in.get(reverse("patient_detail", args=[patient.pk]))
    for _ in range(5):
        scored(LesionFactory(patient=patient), [0.1, 0.2, 0.3])
    with CaptureQueriesContext(connection) as many:
        client_logged_in.get(reverse("patient_detail", args=[patient.pk]))
    assert len(many) == len(one)


def test_printable_summary_lists_every_lesion_with_map_and_is_audited(client_logged_in, patient, other_patient):
    scored(LesionFactory(patient=patient, label="One", body_map_view="back", body_map_x=0.5, body_map_y=0.3), [0.2])
    LesionFactory(patient=patient, label="Two")
    response = client_logged_in.get(reverse("patient_summary", args=[patient.pk]))
    content = response.content.decode()
    assert response.status_code == 200
    assert "One" in content and "Two" in content and 'class="body-figure' in content
    assert "Latest capture of One" in content
    assert AuditEvent.objects.filter(object_type="Patient", detail__page="summary").exists()
    assert client_logged_in.get(reverse("patient_summary", args=[other_patient.pk])).status_code == 404


def test_the_trend_follows_when_pictures_were_taken_and_holds_only_finished_scores(patient):
    from lesions.selectors import patient_lesions_with_trends

    lesion = LesionFactory(patient=patient, label="Back")
    now = timezone.now()
    # Uploaded in this order, taken in another: a photo from last year is imported after today's.
    today = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image(), taken_at=now)
    last_year = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image(),
                                        taken_at=now - timedelta(days=365))
    pending = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image(),
                                      taken_at=now + timedelta(minutes=5))  # its analysis still queued
    Analysis.objects.filter(capture=today).update(status="done", probability=0.4, threshold=0.3)
    Analysis.objects.filter(capture=last_year).update(status="done", probability=0.1, threshold=0.3)
    LesionFactory(patient=patient, label="Arm")  # no captures: an empty trend
    rows = {row.label: row for row in patient_lesions_with_trends(patient)}
    assert [(taken, p) for taken, p, _ in rows["Back"].trend] == [(last_year.taken_at, 0.1), (today.taken_at, 0.4)]
    assert (rows["Back"].latest_probability, rows["Back"].latest_threshold) == (0.4, 0.3)
    assert (rows["Arm"].trend, rows["Arm"].latest_probability, rows["Arm"].latest_threshold) == ([], None, None)
    assert pending.analyses.get().status == Analysis.Status.QUEUED


def test_lesions_are_listed_by_label_with_their_latest_taken_capture(patient):
    from lesions.selectors import lesions_with_latest

    now = timezone.now()
    back = LesionFactory(patient=patient, label="Back")
    arm = LesionFactory(patient=patient, label="Arm")
    latest = services.capture_create(request=None, user=None, lesion=back, data=lesion_image(), taken_at=now)
    services.capture_create(request=None, user=None, lesion=back, data=lesion_image(),
                            taken_at=now - timedelta(days=30))  # imported later, taken earlier
    rows = list(lesions_with_latest(patient))
    assert [(r.label, r.capture_count, r.latest_capture_id) for r in rows] == [("Arm", 0, None),
                                                                               ("Back", 2, latest.pk)]
    assert rows[0] == arm


def test_same_moment_captures_keep_one_order(patient):
    from lesions.selectors import lesions_with_latest, patient_lesions_with_trends

    lesions = [LesionFactory(patient=patient, label="Back")]
    taken = timezone.now()
    captures = [services.capture_create(request=None, user=None, lesion=lesions[0], data=lesion_image(),
                                        taken_at=taken) for _ in range(3)]
    for capture, probability in zip(captures, (0.1, 0.2, 0.3)):
        Analysis.objects.filter(capture=capture).update(status="done", probability=probability, threshold=0.3)
    scramble_table_order(captures)
    scramble_table_order(list(Analysis.objects.filter(capture__in=captures)))
    read_in_table_order()
    rows = list(lesions_with_latest(patient))
    assert rows[0].latest_capture_id == captures[2].pk  # taken at the same moment: the last entered
    back = patient_lesions_with_trends(patient)[0]
    assert [probability for _, probability, _ in back.trend] == [0.1, 0.2, 0.3]
    assert back.latest_probability == 0.3


def test_lesions_with_the_same_label_come_in_order_of_entry(patient):
    from lesions.selectors import lesions_with_latest

    # Seven, so that the order a hashed GROUP BY happens to give is not the right one by chance.
    lesions = [LesionFactory(patient=patient, label="Back") for _ in range(7)]
    scramble_table_order(lesions)
    read_in_table_order(grouping_by_hash=True)
    assert list(lesions_with_latest(patient)) == lesions
