"""U-Net, classifier, losses, augmentation, training and export on small synthetic data."""

from __future__ import annotations

import json

import keras  # pinned requirement: missing fails, never skips
import numpy as np
import pytest

from ml.augmentation import augment_pair, build_geometric_augmenter  # noqa: E402
from ml.classifier import build_classifier, class_weights  # noqa: E402
from ml.unet import REPORT_INPUT_SHAPE, build_unet, dice_bce_loss, dice_coefficient  # noqa: E402


def synthetic_batch(n=4, size=(32, 32), seed=0):
    rng = np.random.default_rng(seed)
    images = np.zeros((n, *size, 3), np.float32) + 200
    masks = np.zeros((n, *size, 1), np.float32)
    yy, xx = np.mgrid[: size[0], : size[1]]
    for i in range(n):
        cy, cx, r = rng.integers(10, 22), rng.integers(10, 22), rng.integers(4, 9)
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        masks[i, inside, 0] = 1
        images[i, inside] = (80, 50, 30)
    return images, masks


def test_unet_output_shape_and_report_preset():
    model = build_unet((32, 32, 3), base_filters=4, depth=2)
    assert model.output_shape == (None, 32, 32, 1)
    report = build_unet(REPORT_INPUT_SHAPE, base_filters=4, depth=4)
    assert report.output_shape == (None, 64, 80, 1)
    with pytest.raises(ValueError):
        build_unet((30, 30, 3), depth=2)


def test_dice_and_loss_on_hand_made_cases():
    truth = np.zeros((1, 4, 4, 1), np.float32)
    truth[0, :2] = 1
    assert float(dice_coefficient(truth, truth, smooth=0.0)) == pytest.approx(1.0)
    assert float(dice_coefficient(truth, 1 - truth, smooth=0.0)) == pytest.approx(0.0)
    perfect = float(dice_bce_loss(truth, np.clip(truth, 1e-7, 1 - 1e-7)))
    wrong = float(dice_bce_loss(truth, np.clip(1 - truth, 1e-7, 1 - 1e-7)))
    assert perfect < 0.01 and wrong > 2.0


def test_flipped_mask_stays_aligned_with_flipped_image():
    images, masks = synthetic_batch()
    augmenter = build_geometric_augmenter(seed=3)
    for _ in range(3):
        out_img, out_mask = augment_pair(images, masks, augmenter)
        out_img, out_mask = np.asarray(out_img), np.asarray(out_mask)
        dark = out_img.mean(axis=-1) < 140
        lesion = out_mask[..., 0] > 0.5
        # Where the lesion went, its dark pixels went too (a few border pixels may be interpolated).
        agreement = (dark == lesion).mean()
        assert agreement > 0.97
        assert set(np.unique(out_mask)) <= {0.0, 1.0}


def test_class_weights_balance_the_imbalance():
    weights = class_weights(np.array([0] * 80 + [1] * 20))
    assert weights[1] / weights[0] == pytest.approx(4.0)
    assert 80 * weights[0] == pytest.approx(20 * weights[1])


def test_classifier_loads_a_local_weights_file_and_freezes_lower_blocks(tmp_path):
    source = keras.applications.MobileNet(alpha=0.25, include_top=False, weights=None, input_shape=(64, 64, 3))
    for layer in source.layers:
        for w in layer.weights:
            w.assign(np.full(w.shape, 0.01, dtype="float32"))
    path = tmp_path / "mobilenet_tiny.weights.h5"
    source.save_weights(path)
    model = build_classifier("mobilenet", (64, 64, 3), weights=path)
    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    first_conv = backbone.get_layer("conv1")
    assert np.allclose(first_conv.kernel.numpy(), 0.01)
    assert not first_conv.trainable
    assert backbone.get_layer("conv_pw_13").trainable
    with pytest.raises(FileNotFoundError):
        build_classifier("mobilenet", (64, 64, 3), weights=tmp_path / "missing.h5")


def test_tiny_training_step_lowers_the_loss_and_export_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    images, masks = synthetic_batch(8)
    model = build_unet((32, 32, 3), base_filters=4, depth=2)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=dice_bce_loss)
    # The training loss (batch statistics), not evaluate(): BatchNorm's moving averages need far
    # more than a few steps to settle, so inference-mode loss says little about a tiny run.
    losses = model.fit(images, masks, epochs=15, batch_size=8, verbose=0).history["loss"]
    assert losses[-1] < 0.8 * losses[0]
    path = tmp_path / "seg.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    np.testing.assert_array_equal(model.predict(images, verbose=0), loaded.predict(images, verbose=0))


def tiny_shared_layout(data):
    """Twelve synthetic captures in the shared data's layout: nine for train, three for val."""
    from PIL import Image

    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    images, masks = synthetic_batch(12, size=(40, 48))
    rows = ["image_id,melanoma,lesion_id,split"]
    for i, (img, mask) in enumerate(zip(images, masks)):
        Image.fromarray(img.astype(np.uint8)).save(data / "images" / f"IMG_{i}.jpg")
        Image.fromarray((mask[..., 0] * 255).astype(np.uint8)).save(data / "masks" / f"IMG_{i}.png")
        rows.append(f"IMG_{i},{i % 2},L{i},{'val' if i >= 9 else 'train'}")
    (data / "labels.csv").write_text("\n".join(rows))
    return data


def test_training_cli_resumes_and_exports(tmp_path):
    """A tiny dataset in the shared layout: train 1 epoch, then resume to 2, and get an export."""
    from ml.training import SegmenterConfig, train_segmenter

    data = tiny_shared_layout(tmp_path / "data")
    out = tmp_path / "runs" / "seg"
    config = SegmenterConfig(data=str(data), out=str(out), height=32, width=32, base_filters=4, depth=2, epochs=1,
                             batch_size=4)
    train_segmenter(config)
    config.epochs = 2
    path = train_segmenter(config)
    history = (out / "history.csv").read_text().strip().splitlines()
    assert len(history) == 3  # header + 2 epochs: the second run resumed rather than restarted
    meta = json.loads((out / "export" / "segmenter.json").read_text())
    assert meta["input_shape"] == [32, 32, 3] and meta["version"]
    assert (out / "learning_curves.png").is_file()
    assert keras.saving.load_model(path, compile=False).output_shape == (None, 32, 32, 1)


def test_classifier_training_traces_its_steps_and_exports_a_threshold(tmp_path):
    """The classifier's training and prediction steps (class-weighted loss, AUC and accuracy)
    traced into graphs as in a real run: the experiment test runs the same code eagerly."""
    from ml.training import ClassifierConfig, train_classifier

    data = tiny_shared_layout(tmp_path / "data")
    out = tmp_path / "runs" / "classifier"
    path = train_classifier(ClassifierConfig(data=str(data), out=str(out), size=32, epochs=1, batch_size=4))
    meta = json.loads((out / "export" / "classifier.json").read_text())
    assert meta["train_images"] == 9 and meta["val_metrics"]["images"] == 3
    assert 0.0 <= meta["threshold"] <= 1.0 and meta["class_weights"]
    assert keras.saving.load_model(path, compile=False).output_shape == (None, 1)


@pytest.mark.parametrize("backbone,size", [("vgg16", 32), ("inception_v3", 75), ("mobilenet_v2", 32)])
def test_report_backbones_build_from_scratch_without_weights(backbone, size):
    model = build_classifier(backbone, (size, size, 3), weights=None)
    assert model.output_shape == (None, 1)
    backbone_model = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    assert all(layer.trainable for layer in backbone_model.layers)  # from scratch: everything trains
