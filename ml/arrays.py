"""Decoded, resized datasets held as numpy arrays and cached on disk, so an epoch reads
memory instead of decoding thousands of JPEGs again."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ml.data import Sample
from ml.preprocessing import crop_resize, lesion_crop_box, load_mask, load_rgb, resize_image, resize_mask


def _cache_key(samples: list[Sample], size: tuple[int, int], crop: bool | str, masks: bool) -> str:
    digest = hashlib.sha256()
    digest.update(f"{size}{crop}{masks}".encode())
    for s in samples:
        digest.update(str(s.image_path).encode())
    return digest.hexdigest()[:16]


def load_arrays(samples: list[Sample], size: tuple[int, int], *, crop: bool, masks: bool,
                cache_dir: str | Path | None = None, desc: str = "decoding") -> dict[str, np.ndarray]:
    """images (N,H,W,3 uint8), labels (N, int8, -1 when unknown), masks (N,H,W,1 uint8) if asked."""
    cache_path, cached = _cached(cache_dir, _cache_key(samples, size, crop, masks))
    if cached is not None:
        return cached
    n = len(samples)
    images = np.zeros((n, *size, 3), np.uint8)
    mask_arr = np.zeros((n, *size, 1), np.uint8) if masks else None
    labels = np.full(n, -1, np.int8)
    for i, sample in enumerate(tqdm(samples, desc=desc, unit="img")):
        images[i] = resize_image(load_rgb(sample.image_path), size, crop=crop)
        if mask_arr is not None and sample.mask_path is not None:
            mask_arr[i, ..., 0] = resize_mask(load_mask(sample.mask_path), size, crop=crop)
        if sample.melanoma is not None:
            labels[i] = sample.melanoma
    result = {"images": images, "labels": labels}
    if mask_arr is not None:
        result["masks"] = mask_arr
    _store(cache_path, result)
    return result


def _cached(cache_dir: str | Path | None, key: str) -> tuple[Path | None, dict[str, np.ndarray] | None]:
    if cache_dir is None:
        return None, None
    path = Path(cache_dir) / f"{key}.npz"
    if not path.is_file():
        return path, None
    with np.load(path) as stored:
        return path, {k: stored[k] for k in stored.files}


def _store(cache_path: Path | None, result: dict[str, np.ndarray]) -> None:
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_suffix(".tmp.npz")
        np.savez(tmp, **result)
        tmp.replace(cache_path)


def load_lesion_crops(samples: list[Sample], size: tuple[int, int], *, margin: float = 0.25,
                      cache_dir: str | Path | None = None, desc: str = "cropping") -> dict[str, np.ndarray]:
    """images (N,H,W,3 uint8): each a square cut around its ground-truth lesion (``margin`` of the
    lesion's size on each side, ``ml.preprocessing.lesion_crop_box``) from the full-resolution
    image, as the Analyzer cuts around the U-Net's mask; labels (N, int8, -1 when unknown).
    Every sample needs a mask."""
    cache_path, cached = _cached(cache_dir, _cache_key(samples, size, f"lesion{margin}", False))
    if cached is not None:
        return cached
    images = np.zeros((len(samples), *size, 3), np.uint8)
    labels = np.full(len(samples), -1, np.int8)
    for i, sample in enumerate(tqdm(samples, desc=desc, unit="img")):
        if sample.mask_path is None:
            raise ValueError(f"{sample.image_id} has no mask to crop around")
        image, mask = load_rgb(sample.image_path), load_mask(sample.mask_path)
        if mask.shape != image.shape[:2]:  # a mask saved at another resolution covers the same field
            mask = resize_mask(mask, image.shape[:2], crop=False)
        images[i] = crop_resize(image, lesion_crop_box(mask, margin), size)
        if sample.melanoma is not None:
            labels[i] = sample.melanoma
    result = {"images": images, "labels": labels}
    _store(cache_path, result)
    return result
