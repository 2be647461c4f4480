"""Near-duplicate images without a lesion id are kept in one split (perceptual hash)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ml.data import Sample, difference_hash, keep_near_duplicates_together


def _lesion_png(path, seed: int, *, brighter: int = 0) -> None:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:120, :160]
    cy, cx = rng.uniform(40, 80), rng.uniform(50, 110)
    blob = ((yy - cy) ** 2 / rng.uniform(200, 600) + (xx - cx) ** 2 / rng.uniform(200, 900)) < 1
    image = np.full((120, 160, 3), (215, 170, 150), np.int16)
    image[blob] = rng.integers(40, 120, 3)
    image += rng.integers(-12, 12, image.shape) + brighter
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path)


def test_a_recoloured_copy_in_val_joins_its_twin_in_train_and_others_stay(tmp_path):
    names = {"a": 1, "a_copy": 1, "b": 2, "c": 3}
    for name, seed in names.items():
        _lesion_png(tmp_path / f"{name}.png", seed, brighter=18 if name == "a_copy" else 0)
    samples = [Sample("a", tmp_path / "a.png", None, 0, "a", "train"),
               Sample("a_copy", tmp_path / "a_copy.png", None, 0, "a_copy", "val"),
               Sample("b", tmp_path / "b.png", None, 1, "b", "val"),
               Sample("c", tmp_path / "c.png", None, 0, "c", "test")]
    assert bin(difference_hash(tmp_path / "a.png") ^ difference_hash(tmp_path / "a_copy.png")).count("1") <= 20
    kept, moved = keep_near_duplicates_together(samples)
    assert {s.image_id: s.split for s in kept} == {"a": "train", "a_copy": "train", "b": "val", "c": "test"}
    assert [(m[0], m[1]) for m in moved] == [("a_copy", "a")]


def test_images_with_a_lesion_id_are_grouped_by_it_not_by_hash(tmp_path):
    _lesion_png(tmp_path / "x.png", 5)
    _lesion_png(tmp_path / "y.png", 5)
    samples = [Sample("x", tmp_path / "x.png", None, 0, "HAM_1", "train"),
               Sample("y", tmp_path / "y.png", None, 0, "HAM_2", "val")]
    kept, moved = keep_near_duplicates_together(samples)
    assert moved == [] and [s.split for s in kept] == ["train", "val"]
