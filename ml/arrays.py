"""Decoded, resized datasets held as numpy arrays and cached on disk, so an epoch reads
memory instead of decoding thousands of JPEGs again."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ml.data import Sample
from ml.preprocessing import load_mask, load_rgb, resize_image, resize_mask


def _cache_key(samples: list[Sample], size: tuple[int, int], crop: bool, masks: bool) -> str:
    digest = hashlib.sha256()
    digest.update(f"{size}{crop}{masks}".encode())
    for s in samples:
        digest.update(str(s.image_path).encode())
    return digest.hexdigest()[:16]


def load_arrays(samples: list[Sample], size: tuple[int, int], *, crop: bool, masks: bool,
                cache_dir: str | Path | None = None, desc: str = "decoding") -> dict[str, np.ndarray]:
    """images (N,H,W,3 uint8), labels (N, int8, -1 when unknown), masks (N,H,W,1 uint8) if asked."""
    cache_path = None
    if cache_dir is not None:
        cache_path = Path(cache_dir) / f"{_cache_key(samples, size, crop, masks)}.npz"
        if cache_path.is_file():
            with np.load(cache_path) as stored:
                return {k: stored[k] for k in stored.files}
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
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_suffix(".tmp.npz")
        np.savez(tmp, **result)
        tmp.replace(cache_path)
    return result
