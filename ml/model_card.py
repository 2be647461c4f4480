"""Refresh the numbers in ml/MODEL_CARD.md from the files the commands wrote, so the card never
quotes a number that no command produced. Sections between <!-- NAME:START --> and
<!-- NAME:END --> markers are replaced; a missing source leaves its section as it was.
Run as ``python -m ml model-card``."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ml.contracts import read_model_manifest
from ml.defaults import BENCH_DIR, EVAL_DIR, MODELS_DIR, RUNS_DIR

CARD = Path(__file__).resolve().parent / "MODEL_CARD.md"


def _replace(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- {name}:START -->\n).*?(<!-- {name}:END -->)", re.S)
    return pattern.sub(lambda m: m.group(1) + body.rstrip() + "\n" + m.group(2), text)


def results_section(seg: dict, cls: dict) -> str:
    cm = cls["confusion"]
    return "\n".join([
        f"| segmentation ({seg['images']:,} images) | value |", "|---|---|",
        f"| mean Jaccard | {seg['jaccard_mean']:.3f} |",
        f"| thresholded Jaccard (ISIC: < 0.65 counts 0) | {seg['jaccard_thresholded_mean']:.3f} |",
        f"| Dice | {seg['dice_mean']:.3f} |",
        f"| pixel sensitivity / specificity | {seg['sensitivity_mean']:.3f} / {seg['specificity_mean']:.3f} |",
        "", f"| classification, melanoma vs rest ({cls['images']:,} images) | value |", "|---|---|",
        f"| ROC AUC | {cls['roc_auc']:.3f} |",
        f"| average precision | {cls['average_precision']:.3f} |",
        f"| sensitivity at 90% / 95% specificity | {cls['sensitivity_at_90_specificity']:.3f} / "
        f"{cls['sensitivity_at_95_specificity']:.3f} |",
        f"| specificity at 95% sensitivity | {cls['specificity_at_95_sensitivity']:.3f} |",
        f"| operating threshold (chosen on val) | {cls['threshold']:.3f} |",
        f"| sensitivity / specificity at that threshold | {cls['sensitivity']:.3f} / {cls['specificity']:.3f} |",
        f"| balanced accuracy | {cls['balanced_accuracy']:.3f} |",
        f"| Brier score | {cls['brier']:.3f} |",
        f"| confusion (TP, FN, FP, TN) | {cm['tp']}, {cm['fn']}, {cm['fp']}, {cm['tn']} |",
    ])


def _ci(cls: dict, key: str) -> str:
    ci = cls.get(f"{key}_ci95")
    return f" (95% CI {ci[0]:.3f}–{ci[1]:.3f})" if ci else ""


def reliability_section(cls: dict, calibrator: dict | None, calibrated: bool) -> str:
    """Intervals, calibration, and results per source and per diagnosis (from test_metrics)."""
    lines = [f"Test split: {cls['images']:,} images, {cls['positives']} melanomas; threshold "
             f"{cls['threshold']:.3f} chosen on val.", "",
             "| figure | value |", "|---|---|",
             f"| ROC AUC | {cls['roc_auc']:.3f}{_ci(cls, 'roc_auc')} |",
             f"| sensitivity at the threshold | {cls['sensitivity']:.3f}{_ci(cls, 'sensitivity')} |",
             f"| specificity at the threshold | {cls['specificity']:.3f}{_ci(cls, 'specificity')} |",
             f"| melanomas scored below the threshold | {cls.get('melanomas_below_threshold', 'n/a')} |"]
    if "ece" in cls:
        lines.append(f"| expected calibration error (15 bins) | {cls['ece']:.3f} |")
    if calibrator:
        lines.append(f"| calibration | Platt scaling fitted on {calibrator.get('fitted_on', 'val')}: slope "
                     f"{calibrator['slope']:.3f}, intercept {calibrator['intercept']:.3f}; val ECE "
                     f"{calibrator.get('ece_before', float('nan')):.3f} before, "
                     f"{calibrator.get('ece_after', float('nan')):.3f} after |")
    lines += ["", "The page calls the output a **" + ("melanoma probability" if calibrated else
              "melanoma score (not a probability)") + "**: it is called a probability only when the test "
              "ECE is under 0.05.", "", "| source | images | melanomas | ROC AUC | sensitivity | specificity |",
              "|---|---|---|---|---|---|"]
    for name, row in sorted(cls.get("per_source", {}).items()):
        lines.append(f"| {name} | {row['images']} | {row['melanomas']} | {row.get('roc_auc', float('nan')):.3f} | "
                     f"{row.get('sensitivity', float('nan')):.3f} | {row.get('specificity', float('nan')):.3f} |")
    lines += ["", "| diagnosis (test) | images | scored at or above the threshold |", "|---|---|---|"]
    for name, row in cls.get("per_diagnosis", {}).items():
        lines.append(f"| {name} | {row['images']} | {row['above_threshold']:.0%} |")
    return "\n".join(lines)


def baseline_section(baseline: dict, seg: dict, cls: dict) -> str:
    bseg, bcls = baseline["segmentation"], baseline["classification"]
    return "\n".join([
        "| test split | shipped models | classical baseline |", "|---|---|---|",
        f"| mean Jaccard | {seg['jaccard_mean']:.3f} | {bseg['jaccard_mean']:.3f} |",
        f"| thresholded Jaccard | {seg['jaccard_thresholded_mean']:.3f} | {bseg['jaccard_thresholded_mean']:.3f} |",
        f"| ROC AUC | {cls['roc_auc']:.3f} | {bcls['roc_auc']:.3f} |",
        f"| sensitivity / specificity at the val-chosen threshold | {cls['sensitivity']:.3f} / "
        f"{cls['specificity']:.3f} | {bcls['sensitivity']:.3f} / {bcls['specificity']:.3f} |",
    ])


def speed_section(bench: dict) -> str:
    lines = [f"{bench['machine']['cpu']}, {bench['machine']['cores']} cores, {bench['device']}, models run on "
             f"{bench.get('runtime', 'tensorflow')}; per image, ms.", "",
             "| batch | segmentation | classification | ABCD features | whole analysis | plain `model.predict` (seg+cls) |",
             "|---|---|---|---|---|---|"]
    for batch, s in bench["batches"].items():
        lines.append(f"| {batch} | {s['segmentation']['median_ms']:.0f} (p95 {s['segmentation']['p95_ms']:.0f}) | "
                     f"{s['classification']['median_ms']:.0f} | {s['features']['median_ms']:.0f} | "
                     f"{s['total']['median_ms']:.0f} (p95 {s['total']['p95_ms']:.0f}) | "
                     f"{s['baseline_predict']['median_ms']:.0f} |")
    return "\n".join(lines)


def refresh(card: Path = CARD) -> list[str]:
    text = card.read_text()
    updated = []
    manifest = read_model_manifest(MODELS_DIR)
    seg, cls = manifest.segmenter.test_metrics, manifest.classifier.test_metrics
    if seg and cls:
        text = _replace(text, "RESULTS", results_section(seg, cls))
        updated.append("results")
        raw = json.loads((MODELS_DIR / "classifier.json").read_text())
        text = _replace(text, "RELIABILITY", reliability_section(cls, raw.get("calibrator"),
                                                                  bool(raw.get("calibrated"))))
        updated.append("reliability")
        baseline = EVAL_DIR / "baseline" / "metrics.json"
        if baseline.is_file():
            text = _replace(text, "BASELINE", baseline_section(json.loads(baseline.read_text()), seg, cls))
            updated.append("baseline")
    experiment = RUNS_DIR / "experiment" / "results.md"
    if experiment.is_file():
        text = _replace(text, "EXPERIMENT", experiment.read_text())
        updated.append("experiment")
    bench = BENCH_DIR / "inference.json"
    if bench.is_file():
        text = _replace(text, "SPEED", speed_section(json.loads(bench.read_text())))
        updated.append("speed")
    card.write_text(text)
    return updated

