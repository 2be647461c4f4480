"""U-Net for lesion segmentation (Ronneberger et al., MICCAI 2015), trained from scratch."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

# The report's input size (height, width).
REPORT_INPUT_SHAPE = (64, 80, 3)


def _conv_block(x, filters: int, name: str):
    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def build_unet(input_shape: tuple[int, int, int] = (128, 128, 3), *, base_filters: int = 16,
               depth: int = 4, mean: np.ndarray | None = None,
               variance: np.ndarray | None = None) -> keras.Model:
    """A U-Net taking RGB 0..255 floats and returning a per-pixel lesion probability.

    ``mean``/``variance`` are the training set's per-channel statistics; they are baked into
    a Normalization layer so exported models carry their own preprocessing.
    Height and width must be divisible by ``2**depth``.
    """
    height, width, _ = input_shape
    if height % 2**depth or width % 2**depth:
        raise ValueError(f"input {height}x{width} is not divisible by 2**depth={2**depth}")
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Normalization(mean=_or_default(mean, 127.5), variance=_or_default(variance, 127.5**2),
                             name="normalize")(inputs)
    skips = []
    for level in range(depth):
        x = _conv_block(x, base_filters * 2**level, f"down{level}")
        skips.append(x)
        x = layers.MaxPooling2D(name=f"pool{level}")(x)
    x = _conv_block(x, base_filters * 2**depth, "bottleneck")
    for level in reversed(range(depth)):
        x = layers.Conv2DTranspose(base_filters * 2**level, 2, strides=2, padding="same", name=f"up{level}")(x)
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _conv_block(x, base_filters * 2**level, f"dec{level}")
    outputs = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="mask")(x)
    return keras.Model(inputs, outputs, name=f"unet_d{depth}_f{base_filters}")


def _or_default(stats: np.ndarray | None, value: float) -> list[float]:
    return [float(v) for v in stats] if stats is not None else [value] * 3


@keras.saving.register_keras_serializable(package="lesiontrack")
def dice_coefficient(y_true, y_pred, smooth: float = 1.0):
    y_true = ops.cast(y_true, y_pred.dtype)
    axes = tuple(range(1, len(y_pred.shape)))
    intersection = ops.sum(y_true * y_pred, axis=axes)
    total = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)
    return ops.mean((2.0 * intersection + smooth) / (total + smooth))


@keras.saving.register_keras_serializable(package="lesiontrack")
def dice_bce_loss(y_true, y_pred):
    """Soft Dice loss plus binary cross-entropy: Dice handles the lesion/background imbalance,
    BCE gives well-behaved gradients early in training."""
    y_true = ops.cast(y_true, y_pred.dtype)
    bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred))
    return bce + (1.0 - dice_coefficient(y_true, y_pred))


@keras.saving.register_keras_serializable(package="lesiontrack")
def soft_jaccard(y_true, y_pred, smooth: float = 1.0):
    y_true = ops.cast(y_true, y_pred.dtype)
    y_hard = ops.cast(y_pred > 0.5, y_pred.dtype)
    axes = tuple(range(1, len(y_pred.shape)))
    inter = ops.sum(y_true * y_hard, axis=axes)
    union = ops.sum(y_true, axis=axes) + ops.sum(y_hard, axis=axes) - inter
    return ops.mean((inter + smooth) / (union + smooth))
