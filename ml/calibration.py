"""Choosing the shipped operating threshold: the highest threshold that reaches the
sensitivity target on a labelled split, written to ml/models/classifier.json (the source of
truth for the threshold, see ml/contracts.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.data import read_dataset, select
from ml.defaults import BATCH_SIZE, SENSITIVITY_TARGET
from ml.evaluation import classifier_probabilities
from ml.inference import Analyzer
from ml.metrics import classification_scores, threshold_for_sensitivity
from ml.score_calibration import expected_calibration_error, fit_platt


@dataclass(frozen=True)
class Calibration:
    threshold: float
    split: str
    sensitivity_target: float
    tta: bool
    scores: dict


def set_classifier_tta(models: Path, tta: bool) -> None:
    """Switch the classifier's flip averaging (the threshold must then be chosen again)."""
    path = models / "classifier.json"
    meta = json.loads(path.read_text())
    meta["tta"] = tta
    path.write_text(json.dumps(meta, indent=2))


class TestSplitRefused(ValueError):
    """Calibration and threshold choice never look at the test split: it must stay unseen."""


def refuse_test_split(split: str) -> None:
    """Raise TestSplitRefused for the test split (checked before anything is written)."""
    if split == "test":
        raise TestSplitRefused("calibrate chooses on val (or train), never on test: test numbers must stay unseen")


def calibrate(data: str, *, models: Path, split: str = "val", sensitivity: float = SENSITIVITY_TARGET,
              batch_size: int = BATCH_SIZE) -> Calibration:
    """Fit Platt scaling of the score and choose the threshold on the split (never test), and record
    both, with the rule and the split's scores, in the classifier's JSON file. The threshold is on
    the calibrated scale (the mapping is monotonic, so the operating point is the same)."""
    refuse_test_split(split)
    analyzer = Analyzer(models)
    chosen = select(read_dataset(data), split, need_label=True)
    raw = classifier_probabilities(analyzer, chosen, batch_size=batch_size, desc=f"calibrating on {split}",
                                   calibrated=False)
    labels = np.array([s.melanoma for s in chosen])
    platt = fit_platt(labels, raw)
    probs = platt.apply(raw)
    threshold = threshold_for_sensitivity(labels, probs, sensitivity)
    scores = classification_scores(labels, probs, threshold)
    path = models / "classifier.json"
    meta = json.loads(path.read_text())
    meta.update({"threshold": threshold,
                 "threshold_rule": f"highest threshold with sensitivity >= {sensitivity:.2f} on {split}"
                                   + (f" (with {analyzer.tta} TTA)" if analyzer.tta else "")
                                   + (f", of the mean logit of {1 + len(analyzer.members)} ensemble members"
                                      if analyzer.members else "")
                                   + ", on the Platt-calibrated scale",
                 "calibrator": {**platt.as_dict(), "fitted_on": split,
                                "ece_before": expected_calibration_error(labels, raw),
                                "ece_after": expected_calibration_error(labels, probs)},
                 "calibration": {k: scores[k] for k in ("roc_auc", "sensitivity", "specificity", "images")}})
    path.write_text(json.dumps(meta, indent=2))
    return Calibration(threshold=threshold, split=split, sensitivity_target=sensitivity, tta=analyzer.tta,
                       scores=scores)
