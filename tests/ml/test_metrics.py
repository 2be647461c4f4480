from __future__ import annotations

import numpy as np
import pytest

from ml import metrics


def test_jaccard_dice_on_hand_made_masks():
    truth = np.zeros((4, 4), np.uint8)
    truth[:2, :] = 1  # 8 pixels
    pred = np.zeros((4, 4), np.uint8)
    pred[1:3, :] = 1  # 8 pixels, 4 overlap
    assert metrics.jaccard(truth, pred) == pytest.approx(4 / 12)
    assert metrics.dice(truth, pred) == pytest.approx(8 / 16)
    assert metrics.thresholded_jaccard(0.64) == 0.0
    assert metrics.thresholded_jaccard(0.7) == 0.7
    sens, spec = metrics.pixel_sensitivity_specificity(truth, pred)
    assert sens == pytest.approx(0.5) and spec == pytest.approx(0.5)


def test_threshold_for_sensitivity():
    labels = np.array([1, 1, 1, 1, 0, 0])
    probs = np.array([0.9, 0.8, 0.4, 0.2, 0.5, 0.1])
    assert metrics.threshold_for_sensitivity(labels, probs, 0.75) == pytest.approx(0.4)
    assert metrics.threshold_for_sensitivity(labels, probs, 1.0) == pytest.approx(0.2)


def test_classification_scores_perfect_and_confusion():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([0.1, 0.2, 0.8, 0.9])
    scores = metrics.classification_scores(labels, probs, 0.5)
    assert scores["roc_auc"] == 1.0
    assert scores["sensitivity"] == 1.0 and scores["specificity"] == 1.0
    assert scores["confusion"] == {"tp": 2, "fn": 0, "fp": 0, "tn": 2}
    assert scores["brier"] == pytest.approx(np.mean([0.01, 0.04, 0.04, 0.01]))


def test_sensitivity_at_specificity():
    labels = np.array([0] * 10 + [1] * 4)
    probs = np.array([0.05 * i for i in range(10)] + [0.95, 0.9, 0.3, 0.2])
    # 90% specificity allows one false positive: threshold above the second-highest negative (0.40).
    assert metrics.sensitivity_at_specificity(labels, probs, 0.9) == pytest.approx(0.5)
