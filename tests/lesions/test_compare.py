"""Comparison view: alignment on the lesion's centre and calibrated scale, the timeline, neighbours."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from clinic.models import AuditEvent
from lesions import presentation, services
from lesions.models import Analysis
from tests.factories import lesion_image

pytestmark = pytest.mark.django_db


def capture_with(lesion, *, days_ago, mm, centroid, probability=0.2, diameter=5.0):
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image((300, 200)),
                                      mm_per_pixel=mm, taken_at=timezone.now() - timedelta(days=days_ago))
    Analysis.objects.filter(capture=capture).update(
        status="done", probability=probability, threshold=0.3,
        features={"diameter": {"value": diameter, "unit": "mm", "area": 20, "area_unit": "mm²"},
                  "colours": {"count": 1, "present": []}, "asymmetry": {"axes_asymmetric": 0},
                  "framing": {"issues": [], "measures": {"centroid_x": centroid[0], "centroid_y": centroid[1]}}})
    return capture


def test_alignment_meets_centroids_and_scales_by_pixel_spacing(lesion):
    capture_with(lesion, days_ago=90, mm=0.05, centroid=(0.5, 0.5))
    capture_with(lesion, days_ago=0, mm=0.1, centroid=(0.25, 0.5))
    before, after = presentation.compare_context(lesion, None, None)["pair"]
    result = presentation.alignment(before, after)
    assert result["calibrated"] and result["scale"] == pytest.approx(2.0)  # one later pixel = 2 earlier pixels
    assert (result["before_cx"], result["before_cy"]) == (150.0, 100.0)
    assert (result["after_cx"], result["after_cy"]) == (75.0, 100.0)


def test_uncalibrated_captures_align_without_scaling(lesion):
    capture_with(lesion, days_ago=9, mm=None, centroid=(0.5, 0.5))
    capture_with(lesion, days_ago=0, mm=0.1, centroid=(0.5, 0.5))
    before, after = presentation.compare_context(lesion, None, None)["pair"]
    result = presentation.alignment(before, after)
    assert result["scale"] == 1.0 and result["calibrated"] is False


def test_page_has_timeline_neighbours_and_audit(client_logged_in, lesion):
    first = capture_with(lesion, days_ago=200, mm=0.05, centroid=(0.5, 0.5), probability=0.1, diameter=4)
    second = capture_with(lesion, days_ago=100, mm=0.05, centroid=(0.5, 0.5), probability=0.2, diameter=5)
    third = capture_with(lesion, days_ago=0, mm=0.05, centroid=(0.5, 0.5), probability=0.6, diameter=7)
    response = client_logged_in.get(reverse("lesion_compare", args=[lesion.pk]))
    context = response.context
    assert [r.capture for r in context["pair"]] == [second, third]
    assert context["previous_pair"] == (first.pk, second.pk) and context["next_pair"] is None
    timeline = context["timeline"]
    assert [p["score"] for p in timeline["points"]] == [0.1, 0.2, 0.6]
    xs = [p["x"] for p in timeline["points"]]
    assert xs[0] < xs[1] < xs[2] and xs[1] - xs[0] == pytest.approx(xs[2] - xs[1], rel=0.02)  # calendar time
    content = response.content.decode()
    assert 'data-scale="1.00000"' in content and "Data table" in content
    assert AuditEvent.objects.filter(object_type="Lesion", detail__page="compare").exists()
    older = client_logged_in.get(reverse("lesion_compare", args=[lesion.pk]), {"a": third.pk, "b": first.pk})
    assert [r.capture for r in older.context["pair"]] == [first, third]  # earlier first whatever the order


def test_one_capture_gets_a_designed_empty_state(client_logged_in, lesion):
    capture_with(lesion, days_ago=0, mm=0.05, centroid=(0.5, 0.5))
    content = client_logged_in.get(reverse("lesion_compare", args=[lesion.pk])).content.decode()
    assert "A comparison needs two captures" in content
