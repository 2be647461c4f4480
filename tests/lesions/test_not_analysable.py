"""An image that is not a plausible lesion capture is stored, marked not analysable with the
reason, never scored, and never used for the growth comparison."""

from __future__ import annotations

import numpy as np
import pytest

from bench import junk_images
from lesions import analysis as pipeline
from lesions import services
from lesions.models import Analysis
from tests.factories import textured_lesion_image
from tests.lesions.test_fault_handling import FixedAnalyzer, files_under

pytestmark = [pytest.mark.django_db]


class EmptyMaskAnalyzer(FixedAnalyzer):
    def analyze(self, image, mm_per_pixel=None):
        result = super().analyze(image, mm_per_pixel)
        result.mask[:] = 0
        return result


class ExplodingAnalyzer(FixedAnalyzer):
    def analyze(self, image, mm_per_pixel=None):
        raise AssertionError("the model must not see an implausible image")


def test_an_all_black_image_is_stored_but_never_scored(lesion, private_media):
    black = junk_images.png(np.zeros((600, 600, 3), np.uint8))
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=black)
    before = files_under(private_media)
    result = pipeline.run_analysis(analysis_id=capture.analyses.get().pk, analyzer=ExplodingAnalyzer(), worker="t")
    assert result.status == Analysis.Status.NOT_ANALYSABLE
    assert "almost uniform" in result.error and result.probability is None and not result.stage_note
    assert capture.image.name in files_under(private_media)  # stored
    assert files_under(private_media) == before  # no mask, overlay or heat map


def test_no_lesion_found_is_not_analysable(lesion):
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=textured_lesion_image())
    result = pipeline.run_analysis(analysis_id=capture.analyses.get().pk, analyzer=EmptyMaskAnalyzer(), worker="t")
    assert result.status == Analysis.Status.NOT_ANALYSABLE and "no lesion was found" in result.error
    assert result.is_finished


def test_a_not_analysable_capture_never_feeds_the_growth_comparison(lesion):
    from datetime import timedelta

    from django.utils import timezone

    earlier = services.capture_create(request=None, user=None, lesion=lesion, data=textured_lesion_image(),
                                      taken_at=timezone.now() - timedelta(days=60))
    first = pipeline.run_analysis(analysis_id=earlier.analyses.get().pk, analyzer=EmptyMaskAnalyzer(), worker="t")
    assert first.status == Analysis.Status.NOT_ANALYSABLE
    # Even with measurements on the row, a not-analysable capture is no baseline for growth.
    Analysis.objects.filter(pk=first.pk).update(features={"diameter": {"value": 3.0, "unit": "mm"}})
    later = services.capture_create(request=None, user=None, lesion=lesion, data=textured_lesion_image(seed=3))
    assert pipeline.previous_features(later) is None


def test_a_second_delivery_does_not_rerun_a_not_analysable_image(lesion):
    black = junk_images.png(np.zeros((300, 300, 3), np.uint8))
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=black)
    pk = capture.analyses.get().pk
    pipeline.run_analysis(analysis_id=pk, analyzer=ExplodingAnalyzer(), worker="t")
    assert pipeline.run_analysis(analysis_id=pk, analyzer=ExplodingAnalyzer(), worker="t") is None
    assert Analysis.objects.get(pk=pk).attempts == 1


def test_case_page_shows_the_reason(client_logged_in, lesion):
    from django.urls import reverse

    black = junk_images.png(np.zeros((300, 300, 3), np.uint8))
    capture = services.capture_create(request=None, user=None, lesion=lesion, data=black)
    pipeline.run_analysis(analysis_id=capture.analyses.get().pk, analyzer=ExplodingAnalyzer(), worker="t")
    body = client_logged_in.get(reverse("lesion_case", args=[lesion.pk])).content.decode()
    assert "Not analysable" in body and "almost uniform" in body
