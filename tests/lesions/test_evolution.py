"""Growth is measured only between comparable captures, with the segmenter's uncertainty (#17 item 6)."""

from __future__ import annotations

import math

import pytest

from lesions.evolution import area_change_uncertainty, compare


def features(area: float, unit: str = "mm") -> dict:
    return {
        "asymmetry": {"axes_asymmetric": 1}, "colours": {"count": 2},
        "diameter": {"value": math.sqrt(area), "unit": unit, "area": area, "area_unit": f"{unit}²"},
    }


def test_uncertainty_from_the_segmenters_jaccard():
    # |A - B| <= |A xor B| = (1 - J)|A u B| per capture; two independent captures add in quadrature.
    assert area_change_uncertainty(0.84) == pytest.approx(math.sqrt(2) * 0.16)
    assert area_change_uncertainty(1.0) == 0.0
    assert area_change_uncertainty(None) is None


@pytest.mark.parametrize("after_area,flagged", [(12.2, False), (12.4, True), (15.0, True), (8.0, False)])
def test_flag_fires_only_when_the_change_exceeds_the_uncertainty(after_area, flagged):
    uncertainty = area_change_uncertainty(0.84)  # about 0.226
    change = compare(features(10.0), features(after_area), before_modality="dermoscopic",
                     after_modality="dermoscopic", area_uncertainty=uncertainty, flag_fraction=0.2)
    assert change.comparable and change.growing is flagged
    summary = change.summary()
    assert "measurement uncertainty ±23%" in summary
    assert ("GROWTH FLAG" in summary) is flagged


def test_without_a_measured_uncertainty_there_is_no_flag():
    change = compare(features(10.0), features(20.0), before_modality="dermoscopic", after_modality="dermoscopic",
                     area_uncertainty=None, flag_fraction=0.2)
    assert not change.growing
    assert "uncertainty is not recorded" in change.summary()


@pytest.mark.parametrize("before_unit,after_unit,before_modality,after_modality,reason", [
    ("px", "mm", "dermoscopic", "dermoscopic", "the earlier capture has no millimetre calibration"),
    ("mm", "px", "dermoscopic", "dermoscopic", "the later capture has no millimetre calibration"),
    ("px", "px", "dermoscopic", "dermoscopic", "neither capture has a millimetre calibration"),
    ("mm", "mm", "clinical", "dermoscopic", "different modalities (clinical close-up, then dermoscopic)"),
])
def test_captures_without_mm_calibration_or_of_another_modality_are_not_compared_in_size(
        before_unit, after_unit, before_modality, after_modality, reason):
    change = compare(features(10.0, before_unit), features(30.0, after_unit), before_modality=before_modality,
                     after_modality=after_modality, area_uncertainty=0.1, flag_fraction=0.2)
    assert not change.comparable and not change.growing
    summary = change.summary()
    assert f"not comparable in size: {reason}" in summary
    assert "area" not in summary and "diameter" not in summary and "GROWTH" not in summary
