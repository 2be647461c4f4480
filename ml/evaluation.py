"""Prediction over folders, evaluation against a labelled split, and recording the test
metrics beside the shipped models. Library functions: ``python -m ml`` only parses arguments
and prints."""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ml.data import Sample, list_images, read_dataset, select
from ml.defaults import BATCH_SIZE
from ml.inference import Analyzer
from ml.metrics import bootstrap_intervals, classification_scores, jaccard, pixel_accuracy, segmentation_scores
from ml.preprocessing import load_mask, load_rgb
from ml.report import write_evaluation_report
from ml.score_calibration import MAX_ECE_FOR_PROBABILITY, expected_calibration_error


@dataclass
class PredictionRun:
    predicted: int
    elapsed_s: float
    models: str
    device: str
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def predict_images(inputs: list[str], out: Path, *, models: str | Path, batch_size: int = BATCH_SIZE,
                   overlays: bool = True) -> PredictionRun:
    """Masks, overlays and predictions.csv for every image under the inputs; an unreadable file
    is reported in ``failures`` and does not stop the others."""
    paths = list_images(inputs)
    if not paths:
        raise FileNotFoundError(f"no images found in {', '.join(inputs)}")
    out.mkdir(parents=True, exist_ok=True)
    analyzer = Analyzer(models)
    failures: list[tuple[str, str]] = []
    started = time.perf_counter()
    with (out / "predictions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "melanoma"])
        with tqdm(total=len(paths), desc="predicting", unit="img") as bar:
            for start in range(0, len(paths), batch_size):
                chunk = paths[start:start + batch_size]
                images, ids = [], []
                for path in chunk:
                    try:
                        images.append(load_rgb(path))
                        ids.append(path.stem)
                    except Exception as exc:  # one unreadable file must not stop thousands
                        failures.append((str(path), f"{type(exc).__name__}: {exc}"))
                if images:
                    results = analyzer.analyze_batch(images, features=False, heatmaps=False)
                    for image_id, result in zip(ids, results):
                        writer.writerow([image_id, f"{result.probability:.6f}"])
                        Image.fromarray(result.mask * 255).save(out / f"{image_id}_segmentation.png")
                        if overlays:
                            Image.fromarray(result.overlay).save(out / f"{image_id}_overlay.png")
                bar.update(len(chunk))
    return PredictionRun(predicted=len(paths) - len(failures), elapsed_s=time.perf_counter() - started,
                         models=analyzer.version, device=analyzer.device, failures=failures)


def classifier_probabilities(analyzer: Analyzer, samples: list[Sample], *, batch_size: int = BATCH_SIZE,
                             desc: str = "classifying", calibrated: bool = True) -> np.ndarray:
    """The classifier's melanoma output for each sample (segmenting first only for classifiers
    that see the mask: masked images or a lesion-centred crop)."""
    needs_mask = analyzer.needs_mask
    probs: list[float] = []
    for start in tqdm(range(0, len(samples), batch_size), desc=desc, unit="batch"):
        images = [load_rgb(s.image_path) for s in samples[start:start + batch_size]]
        masks = analyzer.segment_batch(images) if needs_mask else [None] * len(images)
        batch_probs, _ = analyzer.classify_batch(images, masks, calibrated=calibrated)
        probs.extend(batch_probs.tolist())
    return np.array(probs)


def evaluate(data: str, *, split: str | None, models: str | Path, out: Path, limit: int | None = None,
             batch_size: int = BATCH_SIZE) -> dict:
    """Segmentation and classification scores of the models on a split (None: all images),
    with the report written under ``out``. Returns the results (what metrics.json holds)."""
    chosen = select(read_dataset(data), split, limit=limit)
    if not chosen:
        raise ValueError(f"no images in split {split or 'all'!r} of {data}")
    analyzer = Analyzer(models)
    truths, preds, labels, probs, per_image = [], [], [], [], []
    for start in tqdm(range(0, len(chosen), batch_size), desc="evaluating", unit="batch"):
        batch = chosen[start:start + batch_size]
        images = [load_rgb(s.image_path) for s in batch]
        masks = analyzer.segment_batch(images)
        batch_probs, _ = analyzer.classify_batch(images, masks)
        for sample, mask, prob in zip(batch, masks, batch_probs):
            row = {"image_id": sample.image_id, "melanoma_probability": float(prob)}
            if sample.mask_path is not None:
                truth = load_mask(sample.mask_path)
                truths.append(truth)
                preds.append(mask)
                row["jaccard"] = jaccard(truth, mask)
            if sample.melanoma is not None:
                labels.append(sample.melanoma)
                probs.append(float(prob))
                row["melanoma"] = sample.melanoma
            per_image.append(row)
    results = {
        "data": str(data), "split": split or "all", "models": analyzer.version, "tta": analyzer.tta,
        "segmentation": {**segmentation_scores(truths, preds), "pixel_accuracy_mean": pixel_accuracy(truths, preds)}
        if truths else None,
        "classification": honest_classification_report(np.array(labels), np.array(probs), analyzer.threshold,
                                                        [s for s in chosen if s.melanoma is not None], data)
        if labels else None,
    }
    write_evaluation_report(out, results, per_image, np.array(labels), np.array(probs))
    return results


# What "rest" (melanoma = 0) holds, and the non-melanoma cancers the score is not built for.
OTHER_CANCERS = {"bcc": "basal cell carcinoma", "akiec": "actinic keratosis / intraepithelial carcinoma",
                 "squamous cell carcinoma": "squamous cell carcinoma"}


def honest_classification_report(labels: np.ndarray, probs: np.ndarray, threshold: float, samples: list[Sample],
                                  data: str | Path) -> dict:
    """Scores at the operating threshold with 95% bootstrap intervals, calibration error, results
    per data source, and how often each diagnosis in "rest" is scored above the threshold."""
    scores = classification_scores(labels, probs, threshold)
    intervals = bootstrap_intervals(labels, probs, threshold)
    scores.update({f"{k}_ci95": list(v) for k, v in intervals.items()})
    scores["ece"] = expected_calibration_error(labels, probs)
    scores["melanomas_below_threshold"] = int(np.sum((labels == 1) & (probs < threshold)))
    rows = _label_rows(data)
    by_source: dict[str, list[int]] = {}
    by_diagnosis: dict[str, list[int]] = {}
    for index, sample in enumerate(samples):
        row = rows.get(sample.image_id, {})
        by_source.setdefault(row.get("dataset") or "unknown", []).append(index)
        by_diagnosis.setdefault(_diagnosis(row), []).append(index)
    scores["per_source"] = {name: _subset_scores(labels[i], probs[i], threshold) for name, i in by_source.items()}
    scores["per_diagnosis"] = {name: {"images": len(i), "above_threshold": float(np.mean(probs[i] >= threshold))}
                               for name, i in sorted(by_diagnosis.items())}
    return scores


def _label_rows(data: str | Path) -> dict[str, dict[str, str]]:
    path = Path(data) / "labels.csv"
    return {r["image_id"]: r for r in csv.DictReader(path.open())} if path.is_file() else {}


_DIAGNOSIS_NAMES = {"nv": "nevus", "mel": "melanoma", "bkl": "benign keratosis", "seborrheic_keratosis":
                    "benign keratosis", "seborrheic keratosis": "benign keratosis", "df": "dermatofibroma",
                    "vasc": "vascular lesion", **OTHER_CANCERS}


def _diagnosis(row: dict[str, str]) -> str:
    raw = (row.get("diagnosis") or "unknown").strip().lower()
    return _DIAGNOSIS_NAMES.get(raw, raw)


def _subset_scores(labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict:
    positives, negatives = labels == 1, labels == 0
    out = {"images": int(len(labels)), "melanomas": int(positives.sum())}
    if positives.any():
        out["sensitivity"] = float(np.mean(probs[positives] >= threshold))
    if negatives.any():
        out["specificity"] = float(np.mean(probs[negatives] < threshold))
    if positives.any() and negatives.any():
        from sklearn.metrics import roc_auc_score

        out["roc_auc"] = float(roc_auc_score(labels, probs))
    return out


def record_test_metrics(models: Path, results: dict) -> list[Path]:
    """Store the scores in the shipped models' JSON files (the notes and the model card quote them)."""
    written = []
    for kind, key in (("segmenter", "segmentation"), ("classifier", "classification")):
        if results.get(key):
            path = models / f"{kind}.json"
            meta = json.loads(path.read_text())
            meta["test_metrics"] = {**results[key], "data": results["data"], "split": results["split"]}
            if kind == "classifier":
                # The page may call the output a probability only when it is calibrated on test.
                meta["calibrated"] = bool(meta.get("calibrator")) and results[key]["ece"] < MAX_ECE_FOR_PROBABILITY
            path.write_text(json.dumps(meta, indent=2))
            written.append(path)
    return written


# Pixel accuracy is printed beside the Jaccard index so the seed report's "95.76%" can be compared
# with what it most likely measured.
SEGMENTATION_SUMMARY = ("images", "jaccard_mean", "jaccard_thresholded_mean", "dice_mean", "sensitivity_mean",
                        "specificity_mean", "pixel_accuracy_mean")
CLASSIFICATION_SUMMARY = ("roc_auc", "average_precision", "sensitivity_at_90_specificity",
                          "sensitivity_at_95_specificity", "specificity_at_95_sensitivity", "threshold", "sensitivity",
                          "specificity", "balanced_accuracy", "brier")


def summary_table(results: dict) -> str:
    seg, cls = results.get("segmentation"), results.get("classification")
    lines = [f"{'metric':<36}{'value':>10}"]
    for prefix, scores, keys in (("segmentation", seg, SEGMENTATION_SUMMARY),
                                 ("classification", cls, CLASSIFICATION_SUMMARY)):
        for key in keys if scores else ():
            value = scores[key]
            lines.append(f"{prefix + ' ' + key:<36}{value:>10d}" if isinstance(value, int)
                         else f"{prefix + ' ' + key:<36}{value:>10.4f}")
    return "\n".join(lines)
