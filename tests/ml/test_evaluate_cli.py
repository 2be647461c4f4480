"""`python -m ml evaluate` prints pixel accuracy beside the Jaccard index, so the seed report's
"95.76%" can be set against what it most likely measured."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ml.cli import main
from ml.metrics import jaccard, pixel_accuracy
from ml.synthetic import synthetic_capture


def test_pixel_accuracy_rewards_the_background_that_jaccard_ignores():
    truth = np.zeros((20, 20), np.uint8)
    truth[5:10, 5:10] = 1  # a 25-pixel lesion on 400 pixels
    pred = np.zeros_like(truth)
    pred[5:10, 5:15] = 1  # twice as large: half of it is skin
    assert jaccard(truth, pred) == pytest.approx(0.5)
    assert pixel_accuracy([truth], [pred]) == pytest.approx(375 / 400)
    assert pixel_accuracy([truth, truth], [pred, truth]) == pytest.approx((375 / 400 + 1) / 2)


def test_evaluate_prints_pixel_accuracy(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    rows = ["image_id,melanoma,lesion_id,split"]
    for i in range(4):
        image = synthetic_capture(i, size=(120, 160))
        Image.fromarray(image).save(data / "images" / f"img{i}.jpg")
        Image.fromarray(((image.mean(axis=-1) < 125) * 255).astype(np.uint8)).save(data / "masks" / f"img{i}.png")
        rows.append(f"img{i},{i % 2},L{i},test")
    (data / "labels.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "eval"
    assert main(["evaluate", "--data", str(data), "--split", "test", "--out", str(out), "--batch-size", "4"]) == 0
    printed = capsys.readouterr().out
    seg = json.loads((out / "metrics.json").read_text())["segmentation"]
    line = next(line for line in printed.splitlines() if line.startswith("segmentation pixel_accuracy_mean"))
    assert float(line.split()[-1]) == pytest.approx(seg["pixel_accuracy_mean"], abs=1e-4)
    assert 0.5 < seg["pixel_accuracy_mean"] <= 1.0 and seg["images"] == 4
