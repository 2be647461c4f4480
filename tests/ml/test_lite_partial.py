"""Fine-tuning the Lite classifier's top blocks on cached activations: the halves compose to the
exported classifier, training the top trains the classifier, and the cache is reused."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from ml.classifier import build_lite_classifier
from ml.lite_partial import CUT_LAYER, RandomViewBatches, cache_views, split_classifier
from ml.lite_training import LiteRunConfig

SIZE = 64  # the cut (stride 16) leaves 4x4 activations: small and fast, same graph as at 224 px


@pytest.fixture()
def classifier() -> keras.Model:
    keras.utils.set_random_seed(7)
    # ImageNet weights (from the installed package): activations of a randomly initialised deep
    # network shrink towards zero and would make every comparison below trivially true.
    return build_lite_classifier("lite0", SIZE, weights=True)


def _images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, SIZE, SIZE, 3)).astype(np.uint8)


def test_halves_compose_to_the_classifier(classifier):
    lower, upper = split_classifier(classifier)
    x = _images(4).astype(np.float32)
    activations = lower.predict(x, verbose=0)
    assert activations.shape == (4, SIZE // 16, SIZE // 16, 112)
    np.testing.assert_allclose(upper.predict(activations, verbose=0), classifier.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-5)


def test_training_the_top_changes_the_classifier_but_not_its_lower_blocks(classifier):
    lower, upper = split_classifier(classifier)
    backbone = classifier.get_layer("efficientnet_lite0")
    frozen_before = backbone.get_layer("block10_project_conv").kernel.numpy().copy()
    top_before = backbone.get_layer("head_conv").kernel.numpy().copy()
    assert not any(w.trainable for w in lower.weights)
    x = _images(8).astype(np.float32)
    upper.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    upper.fit(lower.predict(x, verbose=0), np.array([0, 1] * 4, np.float32)[:, None], epochs=2, verbose=0)
    np.testing.assert_array_equal(backbone.get_layer("block10_project_conv").kernel.numpy(), frozen_before)
    assert not np.allclose(backbone.get_layer("head_conv").kernel.numpy(), top_before)
    # The exported one-piece classifier carries what the top learnt.
    np.testing.assert_allclose(upper.predict(lower.predict(x, verbose=0), verbose=0),
                               classifier.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


def test_cut_is_the_end_of_the_112_channel_stage(classifier):
    backbone = classifier.get_layer("efficientnet_lite0")
    assert backbone.get_layer(CUT_LAYER).output.shape[-1] == 112
    assert backbone.get_layer("block11_dwconv").strides == (2, 2)  # the next stage starts after the cut


def test_views_are_cached_once_and_differ_by_augmentation(classifier, tmp_path):
    lower, _ = split_classifier(classifier)
    images = _images(6)
    config = LiteRunConfig(name="t", size=SIZE)
    views = cache_views(lower, images, config, tmp_path, 2, log=lambda _: None)
    np.testing.assert_allclose(views[0], lower.predict(images.astype(np.float32), verbose=0).astype(np.float16),
                               rtol=1e-2, atol=1e-2)
    assert np.abs(views[0]).mean() > 0.05
    # view 1 is augmented: its activations differ from the plain view's by much more than rounding
    assert np.abs(views[0].astype(np.float32) - views[1]).mean() > 0.2 * np.abs(views[0]).mean()
    stamp = (tmp_path / "view1.npy").stat().st_mtime_ns
    again = cache_views(lower, images, config, tmp_path, 2, log=lambda _: None)
    assert (tmp_path / "view1.npy").stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again[1], views[1])


def test_each_epoch_shows_every_image_once_from_one_of_its_views():
    count = 10
    views = [np.full((count, 2, 2, 1), v, np.float32) + np.arange(count)[:, None, None, None] * 10
             for v in range(3)]
    labels = np.array([0] * 8 + [1] * 2)
    batches = RandomViewBatches(views, labels, batch_size=4, seed=1, class_weight={0: 0.5, 1: 2.5})
    seen, chosen_views = [], set()
    for index in range(len(batches)):
        x, y, weights = batches[index]
        image = (x[:, 0, 0, 0] // 10).astype(int)
        view = (x[:, 0, 0, 0] % 10).astype(int)
        np.testing.assert_array_equal(y[:, 0], labels[image])
        np.testing.assert_array_equal(weights, np.where(labels[image] == 1, 2.5, 0.5))
        seen += list(image)
        chosen_views |= set(view)
    assert sorted(seen) == list(range(count))
    assert len(chosen_views) > 1
