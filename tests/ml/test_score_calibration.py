"""Calibrated melanoma output: Platt scaling, expected calibration error, bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from ml.metrics import bootstrap_intervals
from ml.score_calibration import (
    MAX_ECE_FOR_PROBABILITY,
    PlattScaling,
    expected_calibration_error,
    fit_platt,
    output_name,
)


def _overconfident(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """True probabilities p, reported as sigmoid(3 * logit(p) + 1.5): the shape class weighting leaves."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.6, n)
    labels = (rng.uniform(size=n) < p).astype(int)
    z = np.log(p / (1 - p))
    return labels, 1 / (1 + np.exp(-(3 * z + 1.5)))


def test_platt_scaling_recovers_the_distortion_and_removes_the_calibration_error():
    labels, scores = _overconfident()
    platt = fit_platt(labels, scores)
    assert platt.slope == pytest.approx(1 / 3, abs=0.06)
    assert platt.intercept == pytest.approx(-0.5, abs=0.15)
    assert expected_calibration_error(labels, scores) > 0.1
    assert expected_calibration_error(labels, platt.apply(scores)) < MAX_ECE_FOR_PROBABILITY


def test_platt_scaling_keeps_the_order_of_scores():
    platt = PlattScaling(0.4, -0.7)
    scores = np.linspace(0.01, 0.99, 50)
    assert np.all(np.diff(platt.apply(scores)) > 0)
    assert PlattScaling.from_dict(platt.as_dict()) == platt


def test_expected_calibration_error_by_hand():
    labels = np.array([0, 0, 1, 1])
    assert expected_calibration_error(labels, np.array([0.0, 0.0, 1.0, 1.0])) == pytest.approx(0.0)
    # One bin holding everything at 0.9 while half are positive: |0.5 - 0.9| = 0.4.
    assert expected_calibration_error(labels, np.full(4, 0.9)) == pytest.approx(0.4)


def test_the_output_is_called_a_probability_only_when_calibrated():
    assert output_name(True) == "melanoma probability"
    assert "not a probability" in output_name(False)


def test_bootstrap_intervals_hold_the_estimate_and_narrow_with_more_data():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 2000)
    scores = np.clip(labels * 0.3 + rng.normal(0.35, 0.2, 2000), 0, 1)
    wide = bootstrap_intervals(labels[:200], scores[:200], 0.5, resamples=300)
    narrow = bootstrap_intervals(labels, scores, 0.5, resamples=300)
    sens = np.mean(scores[labels == 1] >= 0.5)
    assert narrow["sensitivity"][0] <= sens <= narrow["sensitivity"][1]
    assert (narrow["roc_auc"][1] - narrow["roc_auc"][0]) < (wide["roc_auc"][1] - wide["roc_auc"][0])


def test_calibrate_refuses_the_test_split(tmp_path):
    from ml.calibration import TestSplitRefused, calibrate

    with pytest.raises(TestSplitRefused, match="never on test"):
        calibrate(str(tmp_path), models=tmp_path, split="test")
