"""Evaluation reports: metrics.json, per_image.csv, report.md and plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ml.metrics import reliability_curve


def _plots(out: Path, labels: np.ndarray, probs: np.ndarray, per_image: list[dict]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    written = []
    if len(labels) and len(set(labels.tolist())) == 2:
        fpr, tpr, _ = roc_curve(labels, probs)
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.plot(fpr, tpr)
        ax.plot([0, 1], [0, 1], "--", color="grey")
        ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC, melanoma vs rest")
        fig.tight_layout()
        fig.savefig(out / "roc.png", dpi=100)
        plt.close(fig)
        curve = reliability_curve(labels, probs)
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.plot([c["mean_predicted"] for c in curve], [c["fraction_positive"] for c in curve], "o-")
        ax.plot([0, 1], [0, 1], "--", color="grey")
        ax.set(xlabel="mean predicted probability", ylabel="fraction melanoma", title="Reliability")
        fig.tight_layout()
        fig.savefig(out / "reliability.png", dpi=100)
        plt.close(fig)
        written += ["roc.png", "reliability.png"]
    jaccards = [row["jaccard"] for row in per_image if "jaccard" in row]
    if jaccards:
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.hist(jaccards, bins=20, range=(0, 1))
        ax.axvline(0.65, color="red", linestyle="--")
        ax.set(xlabel="Jaccard per image", ylabel="images", title="Segmentation")
        fig.tight_layout()
        fig.savefig(out / "jaccard_hist.png", dpi=100)
        plt.close(fig)
        written.append("jaccard_hist.png")
    return written


def write_evaluation_report(out: Path, results: dict, per_image: list[dict], labels: np.ndarray,
                            probs: np.ndarray) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(results, indent=2))
    keys = sorted({k for row in per_image for k in row})
    with (out / "per_image.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(per_image)
    plots = _plots(out, labels, probs, per_image)
    lines = [f"# Evaluation: {results['data']} (split {results['split']})", "", f"Models: `{results['models']}`", ""]
    seg = results.get("segmentation")
    if seg:
        lines += ["## Segmentation", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in seg.items()]
        lines.append("")
    cls = results.get("classification")
    if cls:
        lines += ["## Classification (melanoma vs rest)", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
                  for k, v in cls.items() if k != "confusion"]
        cm = cls["confusion"]
        lines += ["", f"Confusion at threshold {cls['threshold']:.3f}:", "", "| | predicted melanoma | predicted other |",
                  "|---|---|---|", f"| melanoma | {cm['tp']} | {cm['fn']} |", f"| other | {cm['fp']} | {cm['tn']} |", ""]
    lines += [f"![{p}]({p})" for p in plots]
    (out / "report.md").write_text("\n".join(lines) + "\n")
