"""Data tests: the shipped models on a few real images from ../shared/data (skipped without it)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.cli import main
from tests.conftest import SERVICE_SKIP_TAG

SHARED = Path(os.environ.get("LESIONTRACK_SHARED_DATA",
                             Path(__file__).resolve().parents[3] / "shared" / "data" / "lesions-dev"))
pytestmark = [pytest.mark.data, pytest.mark.slow,
              pytest.mark.skipif(not (SHARED / "labels.csv").is_file(),
                                 reason=f"{SERVICE_SKIP_TAG} shared dermoscopy data not found at {SHARED}")]


def test_dataset_reader_keeps_lesions_within_one_split():
    from ml.data import read_dataset

    samples = read_dataset(SHARED)
    assert len(samples) > 10_000
    splits_by_lesion: dict[str, set[str]] = {}
    for s in samples:
        splits_by_lesion.setdefault(s.lesion_id, set()).add(s.split)
    assert all(len(splits) == 1 for splits in splits_by_lesion.values())
    assert {s.split for s in samples} == {"train", "val", "test"}


def test_evaluate_and_predict_on_real_images(tmp_path):
    out = tmp_path / "eval"
    assert main(["evaluate", "--data", str(SHARED), "--split", "test", "--limit", "24", "--out", str(out)]) == 0
    results = json.loads((out / "metrics.json").read_text())
    seg, cls = results["segmentation"], results["classification"]
    assert seg["images"] > 0 and 0.0 <= seg["jaccard_thresholded_mean"] <= seg["jaccard_mean"] <= 1.0
    assert 0.0 <= cls["sensitivity"] <= 1.0 and cls["images"] == 24
    assert (out / "report.md").read_text().startswith("# Evaluation")

    images = tmp_path / "images"
    images.mkdir()
    chosen = sorted((SHARED / "images").glob("*.jpg"))[:3]
    for path in chosen:
        shutil.copy(path, images / path.name)
    predictions = tmp_path / "pred"
    assert main(["predict", "--out", str(predictions), str(images)]) == 0
    rows = list(csv.DictReader((predictions / "predictions.csv").open()))
    assert [r["image_id"] for r in rows] == [p.stem for p in chosen]
    assert all(0.0 <= float(r["melanoma"]) <= 1.0 for r in rows)
    for path in chosen:
        mask = np.asarray(Image.open(predictions / f"{path.stem}_segmentation.png"))
        assert mask.shape == np.asarray(Image.open(path)).shape[:2]
        assert set(np.unique(mask)) <= {0, 255}
        assert (predictions / f"{path.stem}_overlay.png").is_file()


def test_tflite_gives_tensorflows_outlines_and_decisions_on_real_images(monkeypatch):
    """CPU workers run the models on LiteRT (ml.tflite_runtime): on real test images, every score
    within 1e-4 of TensorFlow's, the same side of the operating threshold, the same outline."""
    from ml.data import read_dataset
    from ml.inference import Analyzer
    from ml.metrics import jaccard
    from ml.preprocessing import load_rgb

    test = sorted((s for s in read_dataset(SHARED) if s.split == "test"), key=lambda s: s.image_id)
    # Up to 32 melanomas and as many others, so that scores fall on both sides of the threshold.
    melanomas = [s for s in test if s.melanoma == 1][:32]
    images = [load_rgb(s.image_path) for s in melanomas + [s for s in test if s.melanoma == 0][:32]]
    results = {}
    for runtime in ("tensorflow", "tflite"):
        monkeypatch.setenv("ML_RUNTIME", runtime)
        analyzer = Analyzer()
        assert analyzer.runtime == runtime
        results[runtime] = [r for start in range(0, len(images), 16)
                            for r in analyzer.analyze_batch(images[start:start + 16], features=False, heatmaps=False)]
    threshold = analyzer.threshold
    above = [r.probability >= threshold for r in results["tensorflow"]]
    assert 4 <= sum(above) <= len(above) - 4  # decisions on both sides are compared
    for reference, lite in zip(results["tensorflow"], results["tflite"]):
        assert lite.probability == pytest.approx(reference.probability, abs=1e-4)
        assert (lite.probability >= threshold) == (reference.probability >= threshold)
        assert jaccard(lite.mask, reference.mask) > 0.999
    assert len(melanomas) >= 8 and len(results["tflite"]) == len(images)
