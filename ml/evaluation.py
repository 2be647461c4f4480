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
from ml.metrics import classification_scores, jaccard, segmentation_scores
from ml.preprocessing import load_mask, load_rgb
from ml.report import write_evaluation_report


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
                             desc: str = "classifying") -> np.ndarray:
    """The classifier's melanoma probability for each sample (segmenting first only for
    classifiers trained on masked images)."""
    probs: list[float] = []
    for start in tqdm(range(0, len(samples), batch_size), desc=desc, unit="batch"):
        images = [load_rgb(s.image_path) for s in samples[start:start + batch_size]]
        masks = analyzer.segment_batch(images) if analyzer.variant != "image" else [None] * len(images)
        batch_probs, _ = analyzer.classify_batch(images, masks)
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
        "segmentation": segmentation_scores(truths, preds) if truths else None,
        "classification": classification_scores(np.array(labels), np.array(probs), analyzer.threshold)
        if labels else None,
    }
    write_evaluation_report(out, results, per_image, np.array(labels), np.array(probs))
    return results


def record_test_metrics(models: Path, results: dict) -> list[Path]:
    """Store the scores in the shipped models' JSON files (the notes and the model card quote them)."""
    written = []
    for kind, key in (("segmenter", "segmentation"), ("classifier", "classification")):
        if results.get(key):
            path = models / f"{kind}.json"
            meta = json.loads(path.read_text())
            meta["test_metrics"] = {**results[key], "data": results["data"], "split": results["split"]}
            path.write_text(json.dumps(meta, indent=2))
            written.append(path)
    return written


SEGMENTATION_SUMMARY = ("images", "jaccard_mean", "jaccard_thresholded_mean", "dice_mean", "sensitivity_mean",
                        "specificity_mean")
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
