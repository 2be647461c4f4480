"""`python -m ml calibrate` writes the operating threshold into the classifier's JSON (the source
of truth for it), and the manifest then stops quoting test figures measured at the old one."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from ml.calibration import TestSplitRefused, calibrate
from ml.cli import main
from ml.contracts import DEFAULT_MODELS_DIR, read_model_manifest
from ml.synthetic import synthetic_capture


def tiny_dataset(folder, n=6):
    (folder / "images").mkdir(parents=True)
    rows = ["image_id,melanoma,lesion_id,split"]
    for i in range(n):
        Image.fromarray(synthetic_capture(i, size=(120, 160))).save(folder / "images" / f"img{i}.jpg")
        rows.append(f"img{i},{int(i % 2 == 0)},L{i},val")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_calibrate_records_the_threshold_where_the_manifest_reads_it(tmp_path):
    models = tmp_path / "models"
    shutil.copytree(DEFAULT_MODELS_DIR, models)
    before = read_model_manifest(models)
    assert before.operating_point().sensitivity is not None  # shipped figures were measured at its threshold
    data = tiny_dataset(tmp_path / "data")
    assert main(["calibrate", "--data", str(data), "--split", "val", "--models", str(models),
                 "--sensitivity", "1.0", "--batch-size", "4"]) == 0
    meta = json.loads((models / "classifier.json").read_text())
    after = read_model_manifest(models)
    assert after.classifier.threshold == meta["threshold"] != before.classifier.threshold
    assert "sensitivity >= 1.00 on val" in meta["threshold_rule"] and meta["calibration"]["images"] == 6
    # Every melanoma scores at or above the chosen threshold (sensitivity 1.0 on the split).
    assert meta["calibration"]["sensitivity"] == 1.0
    point = after.operating_point()
    assert point.threshold == meta["threshold"]
    assert point.sensitivity is None and point.specificity is None  # old test figures belong to the old threshold
    assert np.isfinite(point.threshold)


def test_calibrate_refuses_the_test_split_and_writes_nothing(tmp_path, capsys):
    models = tmp_path / "models"
    shutil.copytree(DEFAULT_MODELS_DIR, models)
    before = (models / "classifier.json").read_bytes()
    data = tiny_dataset(tmp_path / "data")
    with pytest.raises(TestSplitRefused, match="never on test"):
        calibrate(str(data), models=models, split="test")
    # From the command line: a clear message and exit status 2, and --tta is not applied either.
    assert main(["calibrate", "--data", str(data), "--split", "test", "--tta", "on", "--models", str(models)]) == 2
    assert "never on test" in capsys.readouterr().err
    assert (models / "classifier.json").read_bytes() == before
