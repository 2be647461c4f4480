"""Augmentation as in the report: rotation up to 40°, shifts, zoom, horizontal flip;
colour jitter as an option. Geometric transforms are applied to image and mask *together*
(stacked as one 4-channel tensor) so a flipped mask stays aligned with its flipped image."""

from __future__ import annotations

import keras
from keras import layers, ops


def build_geometric_augmenter(*, rotation_degrees: float = 40.0, shift: float = 0.1, zoom: float = 0.1,
                              seed: int | None = None) -> keras.Sequential:
    return keras.Sequential([
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomRotation(rotation_degrees / 360.0, fill_mode="reflect", seed=seed),
        layers.RandomTranslation(shift, shift, fill_mode="reflect", seed=seed),
        layers.RandomZoom(zoom, zoom, fill_mode="reflect", seed=seed),
    ], name="geometric_augmentation")


def build_colour_jitter(*, brightness: float = 0.1, contrast: float = 0.15,
                        seed: int | None = None) -> keras.Sequential:
    return keras.Sequential([
        layers.RandomBrightness(brightness, value_range=(0, 255), seed=seed),
        layers.RandomContrast(contrast, seed=seed),
    ], name="colour_jitter")


def augment_pair(image, mask, geometric: keras.Sequential, colour: keras.Sequential | None = None):
    """Augment an image batch (float 0..255, N×H×W×3) and its mask batch (N×H×W×1, 0/1) jointly."""
    stacked = ops.concatenate([ops.cast(image, "float32"), ops.cast(mask, "float32") * 255.0], axis=-1)
    stacked = geometric(stacked, training=True)
    out_image = ops.clip(stacked[..., :3], 0.0, 255.0)
    out_mask = ops.cast(stacked[..., 3:] > 127.5, "float32")
    if colour is not None:
        out_image = ops.clip(colour(out_image, training=True), 0.0, 255.0)
    return out_image, out_mask
