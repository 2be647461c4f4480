"""``python -m ml <command>``: training, evaluation, prediction and benchmarks."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "lesions-dev"
DEFAULT_WEIGHTS = DEFAULT_DATA.parent / "weights" / "mobilenet_2_5_224_tf_no_top.h5"
DEFAULT_RUNS = Path(__file__).resolve().parent.parent / "var" / "runs"


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _add_train_segmenter(sub) -> None:
    p = sub.add_parser("train-segmenter", help="train the U-Net from scratch (resumes from checkpoints)")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--out", default=str(DEFAULT_RUNS / "segmenter"))
    p.add_argument("--preset", choices=["default", "report"], default="default",
                   help="'report' uses the report's 64x80 input")
    p.add_argument("--size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"))
    p.add_argument("--base-filters", type=int, default=16)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--colour-jitter", action="store_true")
    p.add_argument("--limit", type=int, help="use at most N images per split (smoke runs)")
    p.add_argument("--resume-learning-rate", type=float, help="when resuming, continue with this learning rate")


def _add_train_classifier(sub) -> None:
    p = sub.add_parser("train-classifier", help="fine-tune a melanoma classifier (resumes from checkpoints)")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--out", default=str(DEFAULT_RUNS / "classifier"))
    p.add_argument("--backbone", default="mobilenet", choices=["mobilenet", "mobilenet_v2", "vgg16", "inception_v3"])
    p.add_argument("--weights", help="local ImageNet weights file (.h5) for the backbone; "
                   f"default for mobilenet: {DEFAULT_WEIGHTS} when present")
    p.add_argument("--no-weights", action="store_true", help="train the backbone from scratch")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=5e-4)
    p.add_argument("--fine-tune-from", help="first backbone layer to fine-tune")
    p.add_argument("--variant", default="image", choices=["image", "gt_mask", "pred_mask"])
    p.add_argument("--segmenter", help="segmenter .keras for --variant pred_mask")
    p.add_argument("--no-colour-jitter", action="store_true")
    p.add_argument("--limit", type=int)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ml", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train_segmenter(sub)
    _add_train_classifier(sub)
    from ml import cli_eval

    cli_eval.add_commands(sub)
    return parser


def run_train_segmenter(args: argparse.Namespace) -> int:
    from ml.training import SegmenterConfig, train_segmenter

    height, width = args.size or ((64, 80) if args.preset == "report" else (128, 128))
    path = train_segmenter(SegmenterConfig(
        data=args.data, out=args.out, height=height, width=width, base_filters=args.base_filters,
        depth=args.depth if args.preset == "default" else min(args.depth, 4), epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate, colour_jitter=args.colour_jitter,
        limit=args.limit, resume_learning_rate=args.resume_learning_rate))
    print(f"segmenter ready: {path}")
    return 0


def run_train_classifier(args: argparse.Namespace) -> int:
    from ml.training import ClassifierConfig, train_classifier

    weights = None if args.no_weights else args.weights
    if weights is None and not args.no_weights and args.backbone == "mobilenet" and DEFAULT_WEIGHTS.is_file():
        weights = str(DEFAULT_WEIGHTS)
    path = train_classifier(ClassifierConfig(
        data=args.data, out=args.out, backbone=args.backbone, weights=weights, size=args.size,
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        fine_tune_from=args.fine_tune_from, variant=args.variant, segmenter=args.segmenter,
        colour_jitter=not args.no_colour_jitter, limit=args.limit))
    print(f"classifier ready: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    _quiet_tensorflow()
    args = build_parser().parse_args(argv)
    handlers = {"train-segmenter": run_train_segmenter, "train-classifier": run_train_classifier}
    if args.command in handlers:
        return handlers[args.command](args)
    from ml import cli_eval

    return cli_eval.run(args)


if __name__ == "__main__":
    sys.exit(main())
