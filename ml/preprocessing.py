"""Image preprocessing shared by training and inference.

Follows the report: crop to the model's aspect ratio, resize, then mean subtraction and
per-channel normalisation. Normalisation lives *inside* the exported models (a Keras
``Normalization`` layer adapted on the training set), so the worker and the trainer cannot
disagree about it; this module does the geometric part on numpy arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to an RGB uint8 array with EXIF orientation applied."""
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        return np.asarray(img.convert("RGB"))


def load_mask(path: str | Path) -> np.ndarray:
    with Image.open(path) as img:
        return (np.asarray(img.convert("L")) > 127).astype(np.uint8)


def center_crop_box(width: int, height: int, aspect: float) -> tuple[int, int, int, int]:
    """The largest centred (left, top, right, bottom) box of the given width/height aspect."""
    if width / height > aspect:
        new_w = max(1, round(height * aspect))
        left = (width - new_w) // 2
        return left, 0, left + new_w, height
    new_h = max(1, round(width / aspect))
    top = (height - new_h) // 2
    return 0, top, width, top + new_h


def resize_image(image: np.ndarray, size: tuple[int, int], *, crop: bool) -> np.ndarray:
    """Resize an RGB uint8 image to ``size`` = (height, width), optionally cropping to aspect first."""
    height, width = size
    pil = Image.fromarray(image)
    if crop:
        pil = pil.crop(center_crop_box(pil.width, pil.height, width / height))
    return np.asarray(pil.resize((width, height), Image.BILINEAR))


def resize_mask(mask: np.ndarray, size: tuple[int, int], *, crop: bool) -> np.ndarray:
    height, width = size
    pil = Image.fromarray((mask > 0).astype(np.uint8) * 255)
    if crop:
        pil = pil.crop(center_crop_box(pil.width, pil.height, width / height))
    return (np.asarray(pil.resize((width, height), Image.BILINEAR)) > 127).astype(np.uint8)


def apply_mask(image: np.ndarray, mask: np.ndarray, background: float = 0.0) -> np.ndarray:
    """Image × mask: the report's 'segmented lesion' input, background set to a constant."""
    keep = (mask > 0)[..., None]
    return np.where(keep, image, np.asarray(background, dtype=image.dtype)).astype(image.dtype)


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and variance of a uint8 image stack, for the Normalization layer."""
    channels = images.shape[-1]
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    count = 0
    # Chunked so a large stack is never copied whole into float64.
    for start in range(0, len(images), 256):
        chunk = images[start:start + 256].reshape(-1, channels).astype(np.float64)
        total += chunk.sum(axis=0)
        total_sq += (chunk**2).sum(axis=0)
        count += len(chunk)
    mean = total / max(count, 1)
    return mean, np.maximum(total_sq / max(count, 1) - mean**2, 1e-6)
