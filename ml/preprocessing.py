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


def lesion_crop_box(mask: np.ndarray, margin: float = 0.25) -> tuple[int, int, int, int]:
    """A square (left, top, right, bottom) box around the mask's lesion, ``margin`` of its size on
    each side, kept inside the image. Challenge winners cropped to the lesion this way rather than
    blacking out the background (the report's segment-then-classify experiment). An empty mask
    gives the largest centred square."""
    height, width = mask.shape[:2]
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return center_crop_box(width, height, 1.0)
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    side = max(bottom - top, right - left) * (1 + 2 * margin)
    side = int(round(min(max(side, 16), width, height)))
    cy, cx = (top + bottom) / 2, (left + right) / 2
    left = int(round(min(max(cx - side / 2, 0), width - side)))
    top = int(round(min(max(cy - side / 2, 0), height - side)))
    return left, top, left + side, top + side


def crop_resize(image: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    """``image`` cut to ``box`` = (left, top, right, bottom) and resized to ``size`` = (height, width)."""
    height, width = size
    return np.asarray(Image.fromarray(image).crop(box).resize((width, height), Image.BILINEAR))


def classifier_view(image: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int], *,
                    colour_constancy: bool) -> np.ndarray:
    """What a classifier sees of one image: ``box`` cut out and resized to ``size`` = (height,
    width), colour-corrected first where asked (Shades of Gray with the whole image's illuminant,
    applied to the box alone). Used by the Analyzer and by training alike."""
    if not colour_constancy:
        return crop_resize(image, box, size)
    region = shades_of_gray(image, region=box)
    return crop_resize(region, (0, 0, region.shape[1], region.shape[0]), size)


def shades_of_gray(image: np.ndarray, power: float = 6.0,
                   region: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Shades of Gray colour constancy (Finlayson & Trezzi 2004), as ISIC 2018-2019 winners used
    against differences between dermoscopes: estimate the illuminant per channel as the Minkowski
    p-norm mean and scale each channel so that the illuminant becomes grey.

    ``region`` = (left, top, right, bottom), inside the image: only that part is corrected and
    returned, with the whole image's illuminant (the correction is per pixel, so this is the same
    as cutting the region from the corrected image, without correcting pixels nobody reads)."""
    pixels = np.asarray(image, np.float32)
    illuminant = np.power(np.mean(np.power(pixels, power), axis=(0, 1)), 1.0 / power)
    illuminant = illuminant / (np.sqrt(np.sum(illuminant**2)) + 1e-6)
    if region is not None:
        left, top, right, bottom = region
        pixels = pixels[top:bottom, left:right]
    scaled = pixels / (illuminant * np.sqrt(3.0) + 1e-6)
    return np.clip(scaled, 0, 255).astype(np.uint8)
