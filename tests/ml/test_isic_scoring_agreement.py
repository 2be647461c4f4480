"""Our Jaccard and AUC agree with the official ISIC challenge scorer (isic-challenge-scoring)."""

from __future__ import annotations

import isic_challenge_scoring.metrics as isic_metrics  # pinned dev requirement: missing fails, never skips
import numpy as np
import pandas as pd
import pytest
from isic_challenge_scoring.segmentation import SegmentationScore  # noqa: E402
from PIL import Image

from ml import metrics


def random_blob(rng, shape=(48, 64)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    cy, cx = rng.uniform(12, 36), rng.uniform(16, 48)
    ry, rx = rng.uniform(5, 14), rng.uniform(5, 18)
    return (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1).astype(np.uint8)


def test_segmentation_scores_match_the_official_scorer(tmp_path):
    rng = np.random.default_rng(7)
    truth_dir, pred_dir = tmp_path / "truth", tmp_path / "pred"
    truth_dir.mkdir()
    pred_dir.mkdir()
    truths, preds = [], []
    for i in range(12):
        truth, pred = random_blob(rng), random_blob(rng)
        if i % 3 == 0:
            pred = truth.copy()
            pred[:, : 30] = 0  # partial overlap: some images above and some below the 0.65 cut-off
        truths.append(truth)
        preds.append(pred)
        image_id = f"ISIC_{i:07d}"
        Image.fromarray(truth * 255).save(truth_dir / f"{image_id}_segmentation.png")
        Image.fromarray(pred * 255).save(pred_dir / f"{image_id}_segmentation.png")
    official = SegmentationScore.from_dir(truth_dir, pred_dir).macro_average
    ours = metrics.segmentation_scores(truths, preds)
    assert ours["jaccard_mean"] == pytest.approx(official["jaccard"], abs=1e-9)
    assert ours["jaccard_thresholded_mean"] == pytest.approx(official["threshold_jaccard"], abs=1e-9)
    assert ours["dice_mean"] == pytest.approx(official["dice"], abs=1e-9)
    assert ours["sensitivity_mean"] == pytest.approx(official["sensitivity"], abs=1e-9)
    assert ours["specificity_mean"] == pytest.approx(official["specificity"], abs=1e-9)
    assert 0 < ours["jaccard_thresholded_mean"] < ours["jaccard_mean"]


def test_auc_matches_the_official_scorer():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200)
    probs = np.clip(labels * 0.3 + rng.normal(0.4, 0.2, 200), 0, 1)
    official = isic_metrics.auc(pd.Series(labels.astype(float)), pd.Series(probs), pd.Series(np.ones(200)))
    ours = metrics.classification_scores(labels, probs, 0.5)["roc_auc"]
    assert ours == pytest.approx(official, abs=1e-12)
    assert 0.6 < ours < 0.99
