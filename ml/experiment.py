"""The report's experiment: does classifying the segmented lesion beat the unaltered image?

Three classifiers with the same backbone, split, images and budget are trained on
(a) unaltered images, (b) image × ground-truth mask, (c) image × predicted mask, and scored
on the test split with the matching input.
"""

from __future__ import annotations

import json
from pathlib import Path

from ml.arrays import load_arrays
from ml.data import read_dataset, select
from ml.metrics import classification_scores
from ml.training import ClassifierConfig, classifier_inputs, train_classifier

VARIANTS = {"image": "unaltered image", "gt_mask": "image × ground-truth mask",
            "pred_mask": "image × predicted mask"}


def run_segmentation_experiment(*, data: str, out: Path, epochs: int, size: int, segmenter: str,
                                weights: str | None, limit: int | None) -> str:
    import keras

    out.mkdir(parents=True, exist_ok=True)
    samples = read_dataset(data)
    test = load_arrays(select(samples, "test", need_label=True, need_mask=True, limit=limit), (size, size),
                       crop=True, masks=True, cache_dir=out / "cache", desc="test images")
    rows = {}
    for variant in VARIANTS:
        config = ClassifierConfig(data=data, out=str(out / variant), weights=weights, size=size, epochs=epochs,
                                  variant=variant, segmenter=segmenter if variant == "pred_mask" else None,
                                  require_mask=True, limit=limit)
        model_path = train_classifier(config)
        model = keras.saving.load_model(model_path, compile=False)
        meta = json.loads(model_path.with_suffix(".json").read_text())
        x = classifier_inputs(test, variant, segmenter).astype("float32")
        probs = model.predict(x, batch_size=64, verbose=0)[:, 0]
        rows[variant] = classification_scores(test["labels"], probs, meta["threshold"])
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    table = experiment_table(rows, epochs=epochs, size=size, images=int(len(test["labels"])))
    (out / "results.md").write_text(table)
    return table


def experiment_table(rows: dict, *, epochs: int, size: int, images: int) -> str:
    lines = [f"Same split, images with masks only, MobileNet α=0.25 at {size} px, {epochs} epochs each; "
             f"test images: {images}.", "",
             "| input | ROC AUC | sensitivity | specificity | threshold (from val) |", "|---|---|---|---|---|"]
    for variant, scores in rows.items():
        lines.append(f"| {VARIANTS[variant]} | {scores['roc_auc']:.3f} | {scores['sensitivity']:.3f} | "
                     f"{scores['specificity']:.3f} | {scores['threshold']:.3f} |")
    return "\n".join(lines) + "\n"
