"""Is this a plausible skin-lesion capture at all? Checks run before any score is given.

An image that is not a lesion capture must get no melanoma score: the classifier answers
something for any input (an all-black frame once scored 0.65 with "consider biopsy"). These
checks are deliberately coarse: they refuse junk (blank or uniform frames, noise, images whose
decoded pixels are mostly corrupt, text or screenshots) and segmentations that found no lesion
or a "lesion" filling the whole frame. Softer quality problems (blur, exposure, a lesion cut by
the border) are ml.quality's job and only warn. A JPEG whose compressed data is damaged is
mostly refused before any of this, at upload (lesions.images.jpeg_damage: a strict decode);
these pixel checks catch the damage that decoder does not notice.

Thresholds were set on the shared lesions-dev test split and a synthetic junk set with
`python bench/plausibility.py` (numbers in README.md, "Not analysable images"). Pure numpy:
no Django, no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Before the model (on the decoded RGB image).
WORK_SIDE = 512  # measures run on a copy whose longer side is at most this (strided, not filtered)
MIN_SPREAD = 5.0  # grey-level standard deviation below which the frame is near-uniform
DOMINANT_TOLERANCE = 10  # "the same colour": within this many levels of the most common one
MAX_DOMINANT_FRACTION = 0.92  # a frame this much one colour is a blank background
# A page of text or a screenshot: a flat background (DOCUMENT_DOMINANT_FRACTION) cut by many
# sharp strokes (DOCUMENT_ROUGH_FRACTION); skin around a lesion is never both.
DOCUMENT_DOMINANT_FRACTION = 0.6
DOCUMENT_ROUGH_FRACTION = 0.03
MAX_ROUGH_FRACTION = 0.20  # share of pixels differing from their neighbour by more than ROUGH_STEP
ROUGH_STEP = 48
MAX_SEAM_EXCESS = 1.2  # full-width colour seams on the JPEG block grid (corrupt decode), see below
SEAM_STEP = 24
MAX_FLAT_RUN_FRACTION = 0.30  # share of the image in perfectly flat non-black 8x8 blocks of one colour (decoder fill)
FILL_COLOUR_TOLERANCE = 2  # levels per channel within which flat blocks count as the same fill colour
# After segmentation (on the 0/1 lesion mask).
MIN_LESION_FRACTION = 0.002  # a lesion smaller than this share of the frame counts as "none found"
MAX_LESION_FRACTION = 0.97  # a "lesion" covering more than this is the whole frame, not a lesion


@dataclass(frozen=True)
class ImageMeasures:
    spread: float
    dominant_fraction: float
    rough_fraction: float
    seam_excess: float
    flat_block_fraction: float


def _work_copy(image: np.ndarray) -> np.ndarray:
    step = max(1, int(np.ceil(max(image.shape[:2]) / WORK_SIDE)))
    return image[::step, ::step]


def measure_image(image: np.ndarray) -> ImageMeasures:
    """The numbers the image checks are made of (also printed by bench/plausibility.py)."""
    rgb = np.asarray(image)
    if rgb.dtype != np.uint8:  # the block and seam measures work in 8-bit arithmetic
        raise TypeError(f"expected 8-bit pixels (a decoded image), not {rgb.dtype}")
    if rgb.ndim == 2:
        rgb = np.stack([rgb] * 3, axis=-1)
    small = _work_copy(rgb).astype(np.int16)
    grey = small.mean(axis=2)
    spread = float(grey.std())
    quantised = (small // 8).reshape(-1, 3)
    key = np.argmax(np.bincount(quantised[:, 0] * 1024 + quantised[:, 1] * 32 + quantised[:, 2], minlength=32768))
    mode = np.array([key // 1024, (key // 32) % 32, key % 32]) * 8 + 4
    dominant = float((np.abs(small.reshape(-1, 3) - mode).max(axis=1) <= DOMINANT_TOLERANCE).mean())
    # Neighbour steps at full resolution (noise and corrupt blocks live at the pixel scale).
    full_grey = (rgb[..., 0].astype(np.int16) + rgb[..., 1] + rgb[..., 2]) // 3
    steps = np.abs(np.diff(full_grey, axis=1))
    rough = float(np.count_nonzero(steps > ROUGH_STEP) / steps.size) if steps.size else 0.0
    return ImageMeasures(spread, dominant, rough, _grid_seam_excess(rgb), _flat_block_fraction(rgb))


def _grid_seam_excess(rgb: np.ndarray) -> float:
    """Full-width colour seams on the 8-pixel block grid, beyond what rows off the grid show.

    A JPEG decoded from corrupted entropy data changes colour (or shifts) abruptly from one
    block row to the next, right across the picture. A real photograph has edges anywhere,
    so rows on and off the block grid look alike. Measured as the share of columns whose
    colour jumps by more than SEAM_STEP at each row boundary, summed over the grid rows
    and minus the same sum expected from the off-grid rows (in "full-width seams": a colour
    shift that starts mid-row shows as two part-width seams on consecutive grid rows)."""
    if rgb.shape[0] < 32 or rgb.shape[1] < 32:
        return 0.0
    # |upper - lower| per channel in uint8 (larger minus smaller), then the largest channel: the
    # same as in signed integers without a 16-bit copy of a full-resolution image.
    upper, lower = rgb[:-1], rgb[1:]
    step = np.maximum(upper, lower) - np.minimum(upper, lower)
    step = np.maximum(np.maximum(step[..., 0], step[..., 1]), step[..., 2])
    jumps = np.count_nonzero(step > SEAM_STEP, axis=1) / rgb.shape[1]  # boundary y -> y+1
    best = 0.0
    for phase in range(8):  # where the grid lies (an EXIF rotation can move it)
        on_grid = np.zeros(jumps.shape, dtype=bool)
        on_grid[phase::8] = True
        expected = jumps[~on_grid].mean() * on_grid.sum()
        best = max(best, float(jumps[on_grid].sum() - expected))
    return best


def _flat_block_fraction(rgb: np.ndarray) -> float:
    """Share of the image in perfectly flat, non-black 8x8 blocks of one colour: a decoder's grey
    fill after the data ran out. Real skin has sensor noise and a dermoscope's vignette is black;
    a very smooth picture (a strongly denoised phone photo, an image scaled up) has flat blocks too,
    but their colours follow the picture, while a fill repeats one colour (the commonest flat
    block's, within FILL_COLOUR_TOLERANCE levels)."""
    h, w = (rgb.shape[0] // 8) * 8, (rgb.shape[1] // 8) * 8
    if h == 0 or w == 0:
        return 0.0
    # Each reduction runs over a block's 8 rows first (whole contiguous rows at a time), then over
    # its 8 columns of the 8-times smaller result: numpy's own reduction along a short strided axis
    # costs many times more on a 12-megapixel image.
    band_rows = rgb[:h, :w].reshape(h // 8, 8, w, 3)

    def per_block(combine: np.ufunc, dtype: type | None = None) -> np.ndarray:
        over_rows = _over_eight(band_rows, 1, combine, dtype)
        return _over_eight(over_rows.reshape(h // 8, w // 8, 8, 3), 2, combine)

    top, bottom, sums = per_block(np.maximum), per_block(np.minimum), per_block(np.add, np.uint16)
    flat = (top - bottom).max(axis=-1) <= 1  # uint8: top >= bottom
    total = sums[..., 0].astype(np.uint32) + sums[..., 1] + sums[..., 2]
    dark = total < 24 * 8 * 8 * 3  # a block mean under 24, in whole numbers
    candidates = top[flat & ~dark].astype(np.int16)  # each flat block's colour, to within a level
    if len(candidates) == 0:
        return 0.0
    colours, counts = np.unique(candidates, axis=0, return_counts=True)
    fill = colours[np.argmax(counts)]
    same = (np.abs(candidates - fill) <= FILL_COLOUR_TOLERANCE).all(axis=1)
    return float(np.count_nonzero(same) / flat.size)


def _over_eight(values: np.ndarray, axis: int, combine: np.ufunc, dtype: type | None = None) -> np.ndarray:
    """`combine` (np.maximum, np.minimum, np.add) of the 8 entries along `axis`, in `dtype`
    (the values' own by default; wide enough for a sum)."""
    parts = np.moveaxis(values, axis, 0)
    result = parts[0].astype(dtype or values.dtype)
    for part in parts[1:]:
        combine(result, part, out=result)
    return result


def image_refusal(image: np.ndarray) -> str | None:
    """Why this decoded image is not analysable, or None when it may be a lesion capture."""
    m = measure_image(image)
    if m.spread < MIN_SPREAD:
        return ("Not analysable: the image is almost uniform (no lesion or skin can be seen). "
                "Check the lens and the lighting and take the picture again.")
    if m.rough_fraction > MAX_ROUGH_FRACTION:
        return ("Not analysable: the image is mostly noise or corrupt pixels. "
                "Take or upload the picture again.")
    if m.seam_excess > MAX_SEAM_EXCESS or m.flat_block_fraction > MAX_FLAT_RUN_FRACTION:
        return ("Not analysable: the image data is damaged (the picture decodes into broken blocks). "
                "Upload the original file again.")
    if m.dominant_fraction > MAX_DOMINANT_FRACTION or (
            m.dominant_fraction > DOCUMENT_DOMINANT_FRACTION and m.rough_fraction > DOCUMENT_ROUGH_FRACTION):
        return ("Not analysable: the image looks like a document, a screenshot or a blank background, "
                "not a skin-lesion capture.")
    return None


def mask_refusal(mask: np.ndarray) -> str | None:
    """Why the segmentation says there is no lesion to score, or None."""
    fraction = float(np.asarray(mask).astype(bool).mean()) if np.asarray(mask).size else 0.0
    if fraction < MIN_LESION_FRACTION:
        return ("Not analysable: no lesion was found in the image. Centre the lesion and take the "
                "picture again.")
    if fraction > MAX_LESION_FRACTION:
        return ("Not analysable: the outlined area fills the whole frame, so no lesion border can be "
                "found. Take the picture with some normal skin around the lesion.")
    return None
