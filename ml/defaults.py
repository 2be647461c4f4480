"""Defaults shared by the ml commands and library functions, each defined once."""

from __future__ import annotations

from pathlib import Path

from ml.contracts import DEFAULT_MODELS_DIR

REPO = Path(__file__).resolve().parent.parent
# The data set and ImageNet weights live beside the repository, never inside it.
DATA_DIR = REPO.parent / "shared" / "data" / "lesions-dev"
WEIGHTS_FILE = DATA_DIR.parent / "weights" / "mobilenet_2_5_224_tf_no_top.h5"
RUNS_DIR = REPO / "var" / "runs"  # training runs, checkpoints and the report's experiment
EVAL_DIR = REPO / "var" / "eval"  # evaluation reports and the classical baseline
BENCH_DIR = REPO / "bench-results"  # benchmark JSON (the model card reads inference.json)
MODELS_DIR = DEFAULT_MODELS_DIR  # the shipped models (ml/models)

# The operating threshold is the highest one that still finds this share of melanomas on the
# validation split: missing a melanoma costs more than a biopsy.
SENSITIVITY_TARGET = 0.90
# Images per model call for prediction, evaluation and calibration.
BATCH_SIZE = 32
