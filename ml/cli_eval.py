"""Evaluation, prediction, the report's experiment, the classical baseline and the inference benchmark."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ml.inference import DEFAULT_MODELS_DIR

DEFAULT_EVAL_OUT = Path(__file__).resolve().parent.parent / "var" / "eval"


def add_commands(sub) -> None:
    p = sub.add_parser("predict", help="segment and classify images with the shipped models")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER")
    p.add_argument("--out", required=True)
    p.add_argument("--models", default=str(DEFAULT_MODELS_DIR))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--no-overlay", action="store_true", help="skip the overlay images (faster)")

    p = sub.add_parser("evaluate", help="score the models on a dataset folder (shared layout)")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test", help="split name, or 'all'")
    p.add_argument("--models", default=str(DEFAULT_MODELS_DIR))
    p.add_argument("--out", default=str(DEFAULT_EVAL_OUT))
    p.add_argument("--limit", type=int)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--record", action="store_true",
                   help="store the metrics in the models' JSON files (the stage note quotes them)")

    p = sub.add_parser("calibrate", help="choose the operating threshold on a split (sensitivity target) and "
                       "record it in the shipped classifier's JSON")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--models", default=str(DEFAULT_MODELS_DIR))
    p.add_argument("--sensitivity", type=float, default=0.90)
    p.add_argument("--tta", choices=["on", "off"], help="also switch the classifier's test-time flip averaging")

    p = sub.add_parser("baseline", help="classical floor: Otsu segmentation + logistic regression on colour")
    p.add_argument("--data", required=True)
    p.add_argument("--out", default=str(DEFAULT_EVAL_OUT / "baseline"))
    p.add_argument("--limit", type=int)

    p = sub.add_parser("experiment", help="the report's experiment: unaltered vs GT-segmented vs auto-segmented")
    p.add_argument("--data", required=True)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "var" / "runs" / "experiment"))
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--segmenter", default=str(DEFAULT_MODELS_DIR / "segmenter.keras"))
    p.add_argument("--weights", help="local ImageNet weights for the backbone")
    p.add_argument("--limit", type=int)

    p = sub.add_parser("bench-inference", help="per-stage latency at batch sizes 1, 8 and 32")
    p.add_argument("--models", default=str(DEFAULT_MODELS_DIR))
    p.add_argument("--out", default="bench-results/inference.json")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])

    p = sub.add_parser("ship", help="copy a training run's export into ml/models (the default models)")
    p.add_argument("run_dir")
    p.add_argument("--models", default=str(DEFAULT_MODELS_DIR))


def run(args: argparse.Namespace) -> int:
    handlers = {"predict": run_predict, "evaluate": run_evaluate, "calibrate": run_calibrate, "baseline": run_baseline,
                "experiment": run_experiment, "bench-inference": run_bench_inference, "ship": run_ship}
    return handlers[args.command](args)


def _image_id(path: Path) -> str:
    return path.stem


def run_predict(args: argparse.Namespace) -> int:
    from PIL import Image

    from ml.data import list_images
    from ml.inference import Analyzer
    from ml.preprocessing import load_rgb

    paths = list_images(args.inputs)
    if not paths:
        print("no images found", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    analyzer = Analyzer(args.models)
    failures: list[tuple[str, str]] = []
    started = time.perf_counter()
    with (out / "predictions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "melanoma"])
        with tqdm(total=len(paths), desc="predicting", unit="img") as bar:
            for start in range(0, len(paths), args.batch_size):
                chunk = paths[start:start + args.batch_size]
                images, ids = [], []
                for path in chunk:
                    try:
                        images.append(load_rgb(path))
                        ids.append(_image_id(path))
                    except Exception as exc:  # one unreadable file must not stop thousands
                        failures.append((str(path), f"{type(exc).__name__}: {exc}"))
                if images:
                    results = analyzer.analyze_batch(images, features=False, heatmaps=False)
                    for image_id, result in zip(ids, results):
                        writer.writerow([image_id, f"{result.probability:.6f}"])
                        Image.fromarray(result.mask * 255).save(out / f"{image_id}_segmentation.png")
                        if not args.no_overlay:
                            Image.fromarray(result.overlay).save(out / f"{image_id}_overlay.png")
                bar.update(len(chunk))
    elapsed = time.perf_counter() - started
    done = len(paths) - len(failures)
    print(f"\n{done} image(s) predicted in {elapsed:.1f} s ({elapsed / max(done, 1) * 1000:.0f} ms/image) "
          f"with models {analyzer.version} on {analyzer.device}; results in {out}")
    for path, reason in failures:
        print(f"  skipped {path}: {reason}", file=sys.stderr)
    return 0 if not failures else 1


def run_calibrate(args: argparse.Namespace) -> int:
    from ml.data import read_dataset, select
    from ml.inference import Analyzer
    from ml.metrics import classification_scores, threshold_for_sensitivity
    from ml.preprocessing import load_rgb

    meta_path = Path(args.models) / "classifier.json"
    if args.tta:
        meta = json.loads(meta_path.read_text())
        meta["tta"] = args.tta == "on"
        meta_path.write_text(json.dumps(meta, indent=2))
    analyzer = Analyzer(args.models)
    chosen = select(read_dataset(args.data), args.split, need_label=True)
    probs: list[float] = []
    for start in tqdm(range(0, len(chosen), 32), desc=f"calibrating on {args.split}", unit="batch"):
        images = [load_rgb(s.image_path) for s in chosen[start:start + 32]]
        # Masks matter only to classifiers trained on masked images.
        masks = analyzer.segment_batch(images) if analyzer.variant != "image" else [None] * len(images)
        batch_probs, _ = analyzer.classify_batch(images, masks)
        probs.extend(batch_probs.tolist())
    labels = np.array([s.melanoma for s in chosen])
    threshold = threshold_for_sensitivity(labels, np.array(probs), args.sensitivity)
    scores = classification_scores(labels, np.array(probs), threshold)
    meta = json.loads(meta_path.read_text())
    meta.update({"threshold": threshold, "threshold_rule": f"highest threshold with sensitivity >= "
                 f"{args.sensitivity:.2f} on {args.split}" + (" (with flip TTA)" if analyzer.tta else ""),
                 "calibration": {k: scores[k] for k in ("roc_auc", "sensitivity", "specificity", "images")}})
    meta_path.write_text(json.dumps(meta, indent=2))
    print(f"threshold {threshold:.4f} on {args.split}: AUC {scores['roc_auc']:.4f}, sensitivity "
          f"{scores['sensitivity']:.3f}, specificity {scores['specificity']:.3f} (tta={analyzer.tta})")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from ml.data import read_dataset, select
    from ml.inference import Analyzer
    from ml.metrics import classification_scores, jaccard, segmentation_scores
    from ml.preprocessing import load_mask, load_rgb
    from ml.report import write_evaluation_report

    samples = read_dataset(args.data)
    chosen = select(samples, None if args.split == "all" else args.split, limit=args.limit)
    if not chosen:
        print(f"no images in split {args.split!r} of {args.data}", file=sys.stderr)
        return 2
    analyzer = Analyzer(args.models)
    truths, preds, labels, probs, ids, per_image = [], [], [], [], [], []
    for start in tqdm(range(0, len(chosen), args.batch_size), desc="evaluating", unit="batch"):
        batch = chosen[start:start + args.batch_size]
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
            ids.append(sample.image_id)
            per_image.append(row)
    results = {
        "data": str(args.data), "split": args.split, "models": analyzer.version, "tta": analyzer.tta,
        "segmentation": segmentation_scores(truths, preds) if truths else None,
        "classification": classification_scores(np.array(labels), np.array(probs), analyzer.threshold)
        if labels else None,
    }
    out = Path(args.out)
    write_evaluation_report(out, results, per_image, np.array(labels), np.array(probs))
    _print_summary(results)
    if args.record:
        _record_metrics(Path(args.models), results)
    print(f"\nreport: {out / 'report.md'}")
    return 0


def _record_metrics(models: Path, results: dict) -> None:
    for kind, key in (("segmenter", "segmentation"), ("classifier", "classification")):
        if results.get(key):
            path = models / f"{kind}.json"
            meta = json.loads(path.read_text())
            meta["test_metrics"] = {**results[key], "data": results["data"], "split": results["split"]}
            path.write_text(json.dumps(meta, indent=2))
            print(f"recorded {key} metrics in {path}")


def _print_summary(results: dict) -> None:
    seg, cls = results.get("segmentation"), results.get("classification")
    print(f"\n{'metric':<36}{'value':>10}")
    if seg:
        for key in ("images", "jaccard_mean", "jaccard_thresholded_mean", "dice_mean", "sensitivity_mean",
                    "specificity_mean"):
            print(f"{'segmentation ' + key:<36}{seg[key]:>10.4f}" if key != "images"
                  else f"{'segmentation images':<36}{seg[key]:>10d}")
    if cls:
        for key in ("roc_auc", "average_precision", "sensitivity_at_90_specificity", "sensitivity_at_95_specificity",
                    "specificity_at_95_sensitivity", "threshold", "sensitivity", "specificity", "balanced_accuracy",
                    "brier"):
            print(f"{'classification ' + key:<36}{cls[key]:>10.4f}")


def run_baseline(args: argparse.Namespace) -> int:
    from ml.baseline import evaluate_baseline

    results = evaluate_baseline(args.data, limit=args.limit)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(results, indent=2))
    _print_summary(results)
    print(f"\nwritten {out / 'metrics.json'}")
    return 0


def run_experiment(args: argparse.Namespace) -> int:
    from ml.experiment import run_segmentation_experiment

    table = run_segmentation_experiment(data=args.data, out=Path(args.out), epochs=args.epochs, size=args.size,
                                        segmenter=args.segmenter, weights=args.weights, limit=args.limit)
    print(table)
    return 0


def run_bench_inference(args: argparse.Namespace) -> int:
    from ml.bench import bench_inference

    bench_inference(models=args.models, out=Path(args.out), repeats=args.repeats, batch_sizes=args.batch_sizes)
    return 0


def run_ship(args: argparse.Namespace) -> int:
    import shutil

    export = Path(args.run_dir) / "export"
    models = Path(args.models)
    shipped = []
    for path in sorted(export.glob("*.keras")):
        meta = export / f"{path.stem}.json"
        shutil.copy(path, models / path.name)
        shutil.copy(meta, models / meta.name)
        shipped.append(path.name)
    if not shipped:
        print(f"nothing exported under {export}", file=sys.stderr)
        return 2
    print(f"shipped {', '.join(shipped)} to {models}")
    return 0
