"""`python -m ml experiment` trains every backbone × input variant with the training code and
compares them on val (end to end on a tiny synthetic ISIC 2016 tree, 1 epoch, tiny inputs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ml.cli import main
from ml.data import assign_split
from ml.experiment import parse_names, resolve_weights
from ml.synthetic import synthetic_capture

VAL_FRACTION = 0.4


def tiny_isic2016(root, n_training=18, n_test=6):
    """Synthetic captures in the ISIC 2016 layout; labels alternate within train, val and test so
    that each split holds both classes."""
    rows = {"Training": [], "Test": []}
    for official, count, offset in (("Training", n_training, 0), ("Test", n_test, 1000)):
        data = root / f"ISBI2016_ISIC_Part1_{official}_Data"
        truth = root / f"ISBI2016_ISIC_Part1_{official}_GroundTruth"
        data.mkdir(parents=True)
        truth.mkdir()
        seen = {"train": 0, "val": 0, "test": 0}
        for n in range(count):
            image_id = f"ISIC_{offset + n:07d}"
            image = synthetic_capture(offset + n, size=(60, 80))
            Image.fromarray(image).save(data / f"{image_id}.jpg")
            suffix = "_Segmentation.png" if n % 2 else "_segmentation.PNG"
            Image.fromarray(((image.mean(axis=-1) < 125) * 255).astype(np.uint8)).save(truth / f"{image_id}{suffix}",
                                                                                        format="PNG")
            split = "test" if official == "Test" else assign_split(image_id, VAL_FRACTION, test_fraction=0.0)
            label = seen[split] % 2
            seen[split] += 1
            rows[official].append(f"{image_id},{'malignant' if label else 'benign'}" if official == "Training"
                                  else f"{image_id},{float(label)}")
        assert official == "Test" or min(seen["train"], seen["val"]) >= 4
    for official, lines in rows.items():
        (root / f"ISBI2016_ISIC_Part3_{official}_GroundTruth.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def eager_tensorflow():
    """Keras runs the training and prediction steps without tracing them into graphs. Tracing four
    models was most of the experiment test's time (129 s against 42 s eagerly on a 2-core VM); the
    steps compute the same thing, and tests/ml/test_models.py trains the segmenter and the
    classifier through traced graphs."""
    import tensorflow as tf  # noqa: PLC0415 - only for this test; the ml package imports it lazily

    before = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(before)


@pytest.mark.slow
@pytest.mark.usefixtures("eager_tensorflow")
def test_experiment_compares_backbones_and_variants_on_val_end_to_end(tmp_path, capsys):
    """A report backbone (VGG-16) and EfficientNet-Lite0, from scratch, on the unaltered image and
    the lesion crop: four trainings of one epoch."""
    data = tiny_isic2016(tmp_path / "isic2016")
    out = tmp_path / "experiment"
    assert main(["experiment", "--isic2016", str(data), "--val-fraction", str(VAL_FRACTION),
                 "--backbones", "vgg16,efficientnet_lite0", "--variants", "unaltered,lesion_crop",
                 "--epochs", "1", "--size", "32", "--batch-size", "8", "--no-weights", "--score-test",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ISIC 2016: 18 training images" in printed and "NOT the official 900/379" in printed
    results = json.loads((out / "results.json").read_text())
    combos = [(r["backbone"], r["variant"]) for r in results["rows"]]
    assert combos == [(b, v) for b in ("vgg16", "efficientnet_lite0") for v in ("image", "lesion_crop")]
    val_images = sum(assign_split(f"ISIC_{n:07d}", VAL_FRACTION, test_fraction=0.0) == "val" for n in range(18))
    for row in results["rows"]:
        assert row["weights"] is None
        assert row["val"]["images"] == val_images and row["test"]["images"] == 6
        assert 0.0 <= row["val"]["roc_auc"] <= 1.0 and 0.0 <= row["test"]["roc_auc"] <= 1.0
        # The threshold is chosen on val for sensitivity >= 0.90, and the test split is scored at it.
        assert row["val"]["sensitivity"] >= 0.9 and row["val"]["threshold"] == row["threshold"] == row["test"]["threshold"]
        meta = json.loads((out / f"{row['backbone']}__{row['variant']}" / "export" / "classifier.json").read_text())
        assert meta["val_metrics"]["roc_auc"] == row["val"]["roc_auc"] and meta["threshold"] == row["threshold"]
        assert meta["config"]["layout"] == "isic2016"
    assert results["rows"][0]["input_normalization"] == "training set's per-channel mean and variance"
    crop = json.loads((out / "vgg16__lesion_crop" / "export" / "classifier.json").read_text())
    # The Analyzer reads a lesion-crop classifier as an unaltered-image one cut around the mask.
    assert crop["variant"] == "image" and crop["input"] == {"crop": "lesion", "margin": 0.25}
    table = (out / "results.md").read_text()
    assert table in printed
    assert "| EfficientNet-Lite0 | crop around the lesion | no |" in table and "test ROC AUC" in table
    assert len([line for line in table.splitlines() if line.startswith("| VGG-16 |")]) == 2


def test_names_and_weights_are_checked_before_any_training(tmp_path, capsys):
    assert parse_names("unaltered, masked,lesion_crop,masked", ["image", "gt_mask", "lesion_crop"],
                       {"unaltered": "image", "masked": "gt_mask"}) == ["image", "gt_mask", "lesion_crop"]
    with pytest.raises(ValueError, match="resnet50"):
        parse_names("vgg16,resnet50", ["vgg16"])
    weights = tmp_path / "vgg16_notop.h5"
    weights.write_bytes(b"not checked here")
    assert resolve_weights(["vgg16", "inception_v3"], [f"vgg16={weights}"], no_weights=False) == {
        "vgg16": str(weights), "inception_v3": None}
    assert resolve_weights(["vgg16"], [str(weights)], no_weights=False) == {"vgg16": str(weights)}
    with pytest.raises(ValueError, match="NAME=PATH"):
        resolve_weights(["vgg16", "inception_v3"], [str(weights)], no_weights=False)
    with pytest.raises(FileNotFoundError):
        resolve_weights(["vgg16"], [f"vgg16={tmp_path / 'missing.h5'}"], no_weights=False)
    assert main(["experiment", "--isic2016", str(tmp_path), "--backbones", "vgg16,alexnet", "--out",
                 str(tmp_path / "out")]) == 2
    assert "alexnet" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
