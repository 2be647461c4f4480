"""Turning a network's probability map into a clinical lesion outline."""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage


def resize_probability(prob: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an H×W float probability map to (height, width) bilinearly."""
    height, width = size
    img = Image.fromarray(prob.astype(np.float32), mode="F")
    return np.asarray(img.resize((width, height), Image.BILINEAR))


def clean_mask(binary: np.ndarray) -> np.ndarray:
    """Fill holes and keep the largest connected component: a lesion is one solid region."""
    filled = ndimage.binary_fill_holes(binary > 0)
    labels, count = ndimage.label(filled)
    if count == 0:
        return np.zeros(binary.shape, np.uint8)
    sizes = ndimage.sum_labels(filled, labels, index=np.arange(1, count + 1))
    return (labels == (int(np.argmax(sizes)) + 1)).astype(np.uint8)


def postprocess_mask(prob: np.ndarray, original_size: tuple[int, int], threshold: float = 0.5) -> np.ndarray:
    """Probability map at model size -> cleaned 0/1 mask at the image's own (height, width)."""
    prob = np.squeeze(prob)
    full = resize_probability(prob, original_size)
    return clean_mask(full >= threshold)


def outline(mask: np.ndarray, thickness: int = 2) -> np.ndarray:
    """The lesion's border as a boolean image, ``thickness`` pixels wide."""
    mask = mask > 0
    eroded = ndimage.binary_erosion(mask, iterations=thickness, border_value=0)
    return mask & ~eroded


def overlay_outline(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int] = (0, 255, 0)) -> np.ndarray:
    """The image with the lesion outline drawn on it (RGB uint8)."""
    thickness = max(1, round(max(image.shape[:2]) / 200))
    out = image.copy()
    out[outline(mask, thickness)] = colour
    return out


# The blue→red ramp's red, green and blue for a 0..1 heat value.
_RAMP = (lambda heat: heat, lambda heat: 1.0 - np.abs(heat - 0.5) * 2, lambda heat: 1.0 - heat)


def heatmap_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """A 0..1 heat map blended over the image with a blue→red colour ramp."""
    heat = np.clip(resize_probability(heat, image.shape[:2]), 0.0, 1.0)
    # One channel at a time, with the same float32 operations in the same order as blending the
    # whole (H, W, 3) ramp at once, so the same pixels, without three image-sized float temporaries
    # (hundreds of MB for a 12-megapixel capture).
    out = np.empty(image.shape, np.uint8)
    for channel, ramp in enumerate(_RAMP):
        blended = (1 - alpha) * image[..., channel].astype(np.float32) + alpha * (ramp(heat) * 255)
        out[..., channel] = np.clip(blended, 0, 255)
    return out
