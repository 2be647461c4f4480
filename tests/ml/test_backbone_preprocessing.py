"""The report's backbones see, with ImageNet weights, the input their weights were trained on
(their family's keras.applications preprocess_input), read from a LOCAL weights file; from scratch
they see the training set's normalisation."""

from __future__ import annotations

import keras  # noqa: TID253 -- a Keras model test by design; pinned requirement: missing fails, never skips
import numpy as np
import pytest

from ml.classifier import build_classifier, input_normalization  # noqa: TID253 -- builds Keras models


def saved_backbone(tmp_path, family, size):
    """A backbone with random (non-ImageNet) weights saved as a local weights file: what a real
    ImageNet file gives build_classifier, minus the download."""
    keras.utils.set_random_seed(0)
    build = {"vgg16": keras.applications.VGG16, "inception_v3": keras.applications.InceptionV3,
             "mobilenet": lambda **kw: keras.applications.MobileNet(alpha=0.25, **kw)}[family]
    source = build(include_top=False, weights=None, input_shape=(size, size, 3))
    path = tmp_path / f"{family}_notop.weights.h5"
    source.save_weights(path)
    return source, path


def rgb_batch(size, n=2, seed=1):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def backbone_of(model):
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def test_vgg16_with_local_imagenet_weights_gives_what_keras_preprocess_input_gives(tmp_path):
    source, path = saved_backbone(tmp_path, "vgg16", 32)
    model = build_classifier("vgg16", (32, 32, 3), weights=path,
                             mean=np.array([1.0, 2.0, 3.0]), variance=np.array([4.0, 5.0, 6.0]))
    images = rgb_batch(32)
    expected = source(keras.applications.vgg16.preprocess_input(images.copy()), training=False)
    normalized = model.get_layer("normalize")(images)
    got = backbone_of(model)(normalized, training=False)
    assert float(np.abs(expected).max()) > 0  # a dead network would agree with anything
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))
    # The normalize layer itself is caffe mode (ImageNet means, no scaling) in RGB order; the BGR
    # flip lives in the first convolution's input channels.
    np.testing.assert_allclose(normalized, keras.applications.vgg16.preprocess_input(images.copy())[..., ::-1],
                               rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(backbone_of(model).get_layer("block1_conv1").kernel.numpy(),
                                  source.get_layer("block1_conv1").kernel.numpy()[:, :, ::-1, :])
    assert "vgg16.preprocess_input" in input_normalization("vgg16", path)


def test_inception_v3_with_local_imagenet_weights_uses_its_preprocess_input(tmp_path):
    source, path = saved_backbone(tmp_path, "inception_v3", 75)
    model = build_classifier("inception_v3", (75, 75, 3), weights=path,
                             mean=np.array([10.0, 20.0, 30.0]), variance=np.array([4.0, 5.0, 6.0]))
    images = rgb_batch(75)
    np.testing.assert_allclose(model.get_layer("normalize")(images),
                               keras.applications.inception_v3.preprocess_input(images.copy()), rtol=1e-5, atol=1e-5)
    expected = source(keras.applications.inception_v3.preprocess_input(images.copy()), training=False)
    got = backbone_of(model)(model.get_layer("normalize")(images), training=False)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))
    # Weights came from the file, and the lower blocks are frozen for fine-tuning.
    first_conv, source_conv = (next(layer for layer in m.layers if isinstance(layer, keras.layers.Conv2D))
                               for m in (backbone_of(model), source))
    np.testing.assert_array_equal(first_conv.kernel.numpy(), source_conv.kernel.numpy())
    assert not first_conv.trainable


def test_mobilenet_with_local_weights_uses_its_preprocess_input(tmp_path):
    _, path = saved_backbone(tmp_path, "mobilenet", 32)
    model = build_classifier("mobilenet", (32, 32, 3), weights=path, mean=np.array([1.0, 2.0, 3.0]))
    images = rgb_batch(32)
    np.testing.assert_allclose(model.get_layer("normalize")(images),
                               keras.applications.mobilenet.preprocess_input(images.copy()), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backbone,size", [("vgg16", 32), ("inception_v3", 75)])
def test_without_imagenet_weights_the_training_set_normalisation_is_used(backbone, size):
    mean, variance = np.array([150.0, 120.0, 100.0]), np.array([900.0, 400.0, 625.0])
    model = build_classifier(backbone, (size, size, 3), weights=None, mean=mean, variance=variance)
    images = rgb_batch(size)
    np.testing.assert_allclose(model.get_layer("normalize")(images), (images - mean) / np.sqrt(variance),
                               rtol=1e-5, atol=1e-5)
    # With no statistics given, a plain [-1, 1] scaling.
    plain = build_classifier(backbone, (size, size, 3), weights=None)
    np.testing.assert_allclose(plain.get_layer("normalize")(images), images / 127.5 - 1, rtol=1e-5, atol=1e-5)
    assert input_normalization(backbone, None) == "training set's per-channel mean and variance"


def test_vgg16_classifier_with_imagenet_input_round_trips_through_a_saved_file(tmp_path):
    """The exported classifier is stock Keras layers: it loads without custom objects and gives
    the same scores (the workers load it that way)."""
    _, path = saved_backbone(tmp_path, "vgg16", 32)
    model = build_classifier("vgg16", (32, 32, 3), weights=path)
    model.save(tmp_path / "classifier.keras")
    loaded = keras.saving.load_model(tmp_path / "classifier.keras", compile=False)
    images = rgb_batch(32)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-5)
