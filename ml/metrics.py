"""Segmentation and classification metrics, as the ISIC challenges define them."""

from __future__ import annotations

import numpy as np


def jaccard(truth: np.ndarray, pred: np.ndarray) -> float:
    """Intersection over union of two binary masks; two empty masks agree perfectly."""
    t, p = truth > 0, pred > 0
    union = np.logical_or(t, p).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(t, p).sum() / union)


def thresholded_jaccard(score: float, threshold: float = 0.65) -> float:
    """ISIC 2018 task 1: a Jaccard under 0.65 counts as 0 for that image."""
    return score if score >= threshold else 0.0


def dice(truth: np.ndarray, pred: np.ndarray) -> float:
    t, p = truth > 0, pred > 0
    total = t.sum() + p.sum()
    if total == 0:
        return 1.0
    return float(2 * np.logical_and(t, p).sum() / total)


def pixel_sensitivity_specificity(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    t, p = truth > 0, pred > 0
    tp, tn = np.logical_and(t, p).sum(), np.logical_and(~t, ~p).sum()
    fn, fp = np.logical_and(t, ~p).sum(), np.logical_and(~t, p).sum()
    sens = float(tp / (tp + fn)) if tp + fn else 1.0
    spec = float(tn / (tn + fp)) if tn + fp else 1.0
    return sens, spec


def pixel_accuracy(truths: list[np.ndarray], preds: list[np.ndarray]) -> float:
    """Mean fraction of pixels labelled right: what the seed report's "95.76%" most likely measured
    (it rewards the large skin background, so it reads far higher than the Jaccard index)."""
    return float(np.mean([np.mean((t > 0) == (p > 0)) for t, p in zip(truths, preds)]))


def segmentation_scores(truths: list[np.ndarray], preds: list[np.ndarray]) -> dict[str, float]:
    per_image = [jaccard(t, p) for t, p in zip(truths, preds)]
    sens_spec = [pixel_sensitivity_specificity(t, p) for t, p in zip(truths, preds)]
    return {
        "images": len(per_image),
        "jaccard_mean": float(np.mean(per_image)),
        "jaccard_thresholded_mean": float(np.mean([thresholded_jaccard(j) for j in per_image])),
        "dice_mean": float(np.mean([dice(t, p) for t, p in zip(truths, preds)])),
        "sensitivity_mean": float(np.mean([s for s, _ in sens_spec])),
        "specificity_mean": float(np.mean([s for _, s in sens_spec])),
    }


def threshold_for_sensitivity(labels: np.ndarray, probs: np.ndarray, sensitivity: float) -> float:
    """The highest threshold whose sensitivity (prob >= threshold counts positive) reaches the target."""
    labels, probs = np.asarray(labels), np.asarray(probs)
    positives = np.sort(probs[labels == 1])[::-1]
    if len(positives) == 0:
        return 0.5
    needed = int(np.ceil(sensitivity * len(positives)))
    return float(positives[max(needed, 1) - 1])


def specificity_at_sensitivity(labels: np.ndarray, probs: np.ndarray, sensitivity: float) -> float:
    threshold = threshold_for_sensitivity(labels, probs, sensitivity)
    negatives = np.asarray(probs)[np.asarray(labels) == 0]
    return float(np.mean(negatives < threshold)) if len(negatives) else float("nan")


def sensitivity_at_specificity(labels: np.ndarray, probs: np.ndarray, specificity: float) -> float:
    """Sensitivity at the lowest threshold that keeps specificity at or above the target."""
    labels, probs = np.asarray(labels), np.asarray(probs)
    negatives = np.sort(probs[labels == 0])
    positives = probs[labels == 1]
    if len(negatives) == 0 or len(positives) == 0:
        return float("nan")
    allowed_fp = int(np.floor((1 - specificity) * len(negatives)))
    # Threshold just above the (allowed_fp+1)-th highest negative.
    threshold = negatives[len(negatives) - allowed_fp - 1]
    return float(np.mean(positives > threshold))


def confusion(labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict[str, int]:
    labels, pred = np.asarray(labels).astype(int), (np.asarray(probs) >= threshold).astype(int)
    return {
        "tp": int(((pred == 1) & (labels == 1)).sum()), "fn": int(((pred == 0) & (labels == 1)).sum()),
        "fp": int(((pred == 1) & (labels == 0)).sum()), "tn": int(((pred == 0) & (labels == 0)).sum()),
    }


def classification_scores(labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict[str, object]:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    labels, probs = np.asarray(labels).astype(int), np.asarray(probs, dtype=float)
    cm = confusion(labels, probs, threshold)
    sens = cm["tp"] / max(1, cm["tp"] + cm["fn"])
    spec = cm["tn"] / max(1, cm["tn"] + cm["fp"])
    both = len(set(labels.tolist())) == 2
    return {
        "images": int(len(labels)),
        "positives": int(labels.sum()),
        "roc_auc": float(roc_auc_score(labels, probs)) if both else float("nan"),
        "average_precision": float(average_precision_score(labels, probs)) if both else float("nan"),
        "sensitivity_at_90_specificity": sensitivity_at_specificity(labels, probs, 0.90),
        "sensitivity_at_95_specificity": sensitivity_at_specificity(labels, probs, 0.95),
        "specificity_at_95_sensitivity": specificity_at_sensitivity(labels, probs, 0.95),
        "threshold": float(threshold),
        "sensitivity": float(sens),
        "specificity": float(spec),
        "balanced_accuracy": float((sens + spec) / 2),
        "brier": float(brier_score_loss(labels, probs)),
        "confusion": cm,
    }


def reliability_curve(labels: np.ndarray, probs: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    labels, probs = np.asarray(labels), np.asarray(probs)
    edges = np.linspace(0, 1, bins + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (probs >= lo) & ((probs < hi) if hi < 1 else (probs <= hi))
        if inside.any():
            out.append({"bin_low": float(lo), "bin_high": float(hi), "count": int(inside.sum()),
                        "mean_predicted": float(probs[inside].mean()), "fraction_positive": float(labels[inside].mean())})
    return out


def bootstrap_intervals(labels: np.ndarray, probs: np.ndarray, threshold: float, *, resamples: int = 2000,
                        seed: int = 0, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap confidence intervals (images resampled with replacement) for ROC AUC,
    and sensitivity and specificity at ``threshold``."""
    from sklearn.metrics import roc_auc_score

    labels, probs = np.asarray(labels).astype(int), np.asarray(probs, dtype=float)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {"roc_auc": [], "sensitivity": [], "specificity": []}
    for _ in range(resamples):
        pick = rng.integers(0, len(labels), len(labels))
        y, p = labels[pick], probs[pick]
        if y.min() == y.max():
            continue
        draws["roc_auc"].append(roc_auc_score(y, p))
        draws["sensitivity"].append(float(np.mean(p[y == 1] >= threshold)))
        draws["specificity"].append(float(np.mean(p[y == 0] < threshold)))
    tail = (1 - level) / 2 * 100
    return {k: (float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))) for k, v in draws.items()}
