"""Train and compare EfficientNet-Lite classifier variants on one machine, within a time budget.

    python -m ml.lite_sweep --data DIR --labels LABELS.csv --out OUT [--budget-seconds 420] [--variants a,b]

DIR holds ``images/<id>.jpg``; LABELS.csv the shared labels (image_id, melanoma, split), with
near-duplicate pairs already kept in one split (``ml.data.keep_near_duplicates_together``).
Each variant is trained on train, chosen on val only, and writes to OUT: ``<name>.npz``
(compact weights), ``sweep.json`` (per variant: config, val ROC AUC plain and with flip TTA,
history) and ``val_scores.csv``; checkpoints go to WORK (default OUT/runs).
Written for a GPU host (JAX backend, no TensorFlow) as well as for TensorFlow.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

import keras
import numpy as np
from sklearn.metrics import roc_auc_score

from ml.efficientnet_lite import save_compact_weights
from ml.lite_training import LiteRunConfig, classifier_input, predict_with_flips, train_lite
from ml.postprocess import postprocess_mask
from ml.preprocessing import load_rgb, resize_image

VARIANTS = {
    "centre224": LiteRunConfig(name="centre224", crop="centre"),
    "lesion224": LiteRunConfig(name="lesion224", crop="lesion"),
    "lesion224_sog_focal": LiteRunConfig(name="lesion224_sog_focal", crop="lesion", colour_constancy=True,
                                         strong_colour=True, loss="focal"),
    "lesion224_sog": LiteRunConfig(name="lesion224_sog", crop="lesion", colour_constancy=True, strong_colour=True),
    "lesion288_sog": LiteRunConfig(name="lesion288_sog", crop="lesion", size=288, colour_constancy=True,
                                   strong_colour=True),
}


def segment_all(images: list[np.ndarray], models_dir: Path, batch: int = 256) -> list[np.ndarray]:
    """The shipped segmenter's post-processed masks, as the Analyzer computes them."""
    meta = json.loads((models_dir / "segmenter.json").read_text())
    model = keras.saving.load_model(models_dir / meta["file"], compile=False)
    size, crop = tuple(meta["input_shape"][:2]), bool(meta.get("crop", False))
    x = np.stack([resize_image(img, size, crop=crop) for img in images]).astype(np.float32)
    probs = np.asarray(model.predict(x, batch_size=batch, verbose=0))
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(lambda pair: postprocess_mask(pair[0], pair[1].shape[:2]), zip(probs, images)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=None, help="run folders with checkpoints (resume)")
    parser.add_argument("--models", type=Path, default=Path(__file__).resolve().parent / "models")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--budget-seconds", type=float, default=None,
                        help="start no new variant once this much time has passed")
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--imagenet-weights", default=None,
                        help="backbone weights file (.pth or compact .npz); default: the installed package")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    rows = [r for r in csv.DictReader(args.labels.open()) if r["split"] in ("train", "val")]
    with ThreadPoolExecutor(16) as pool:
        images = list(pool.map(lambda r: load_rgb(args.data / "images" / f"{r['image_id']}.jpg"), rows))
    masks = segment_all(images, args.models)
    print(f"loaded and segmented {len(images)} images in {time.perf_counter() - started:.0f} s", flush=True)
    labels = np.array([int(r["melanoma"]) for r in rows])
    is_train = np.array([r["split"] == "train" for r in rows])
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or args.out / "runs"
    results: dict[str, dict] = {}
    val_scores: dict[str, np.ndarray] = {}
    summary = []
    for name in args.variants.split(","):
        if args.budget_seconds and time.perf_counter() - started > args.budget_seconds:
            print(f"budget spent: {name} not started", flush=True)
            break
        config = replace(VARIANTS[name], epochs=args.epochs)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            x = np.stack(list(pool.map(lambda pair, c=config: classifier_input(pair[0], pair[1], c), zip(images, masks))))
        model = train_lite(config, x[is_train], labels[is_train], x[~is_train], labels[~is_train],
                           work / name, imagenet_weights=args.imagenet_weights or True)
        scores = predict_with_flips(model, x[~is_train])
        result = {"config": asdict(config), "seconds": time.perf_counter() - t0,
                  "val_auc": float(roc_auc_score(labels[~is_train], scores["plain"])),
                  "val_auc_flip4": float(roc_auc_score(labels[~is_train], scores["flip4"])),
                  "history": (work / name / "history.csv").read_text()}
        save_compact_weights(model, args.out / f"{name}.npz")
        results[name] = result
        (args.out / "sweep.json").write_text(json.dumps(results, indent=2))
        val_scores[name] = scores["plain"]
        val_scores[f"{name}_flip4"] = scores["flip4"]
        summary.append((name, result["val_auc"], result["val_auc_flip4"], result["seconds"]))
        print(f"{name}: val AUC {result['val_auc']:.4f} (flip TTA {result['val_auc_flip4']:.4f}) "
              f"in {result['seconds']:.0f} s", flush=True)
    val_ids = [r["image_id"] for r, t in zip(rows, is_train) if not t]
    with (args.out / "val_scores.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "melanoma", *val_scores])
        for i, image_id in enumerate(val_ids):
            writer.writerow([image_id, labels[~is_train][i], *(f"{v[i]:.5f}" for v in val_scores.values())])
    print("\nvariant | val AUC | val AUC flip TTA | seconds")
    for name, auc, auc_tta, seconds in summary:
        print(f"{name} | {auc:.4f} | {auc_tta:.4f} | {seconds:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
