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
