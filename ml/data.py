"""Reading dermoscopic datasets from disk.

Two layouts are understood:

* the shared layout: ``images/<id>.jpg``, ``masks/<id>.png`` and ``labels.csv`` with
  columns image_id, melanoma, lesion_id, split (and more);
* the ISIC challenge layout: ``ISIC_xxxxxxx.jpg`` and ``ISIC_xxxxxxx_segmentation.png``
  side by side (or in sibling folders) plus a ground-truth CSV whose columns are
  ``image_id, melanoma`` or ISIC 2016's headerless ``ISIC_xxxxxxx,<0|1|benign|malignant>``.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Sample:
    image_id: str
    image_path: Path
    mask_path: Path | None
    melanoma: int | None
    lesion_id: str
    split: str


def parse_label(value: str) -> int | None:
    """A melanoma label as the ISIC ground truths write it: 1/0, 1.0/0.0, malignant/benign; None otherwise."""
    text = value.strip().lower()
    if text in {"1", "1.0", "malignant", "melanoma", "true"}:
        return 1
    if text in {"0", "0.0", "benign", "false"}:
        return 0
    return None


def _find_images(root: Path) -> dict[str, Path]:
    folder = root / "images" if (root / "images").is_dir() else root
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.stem.endswith("_segmentation"):
            found[path.stem] = path
    return found


def _find_masks(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if (root / "masks").is_dir():
        for path in (root / "masks").glob("*.png"):
            found[path.stem.removesuffix("_segmentation")] = path
    for folder in {root, root / "images"}:
        if folder.is_dir():
            for path in folder.glob("*_segmentation.png"):
                found[path.stem.removesuffix("_segmentation")] = path
    return found


def _read_labels(root: Path) -> dict[str, dict[str, str]]:
    candidates = [root / "labels.csv", *sorted(root.glob("*GroundTruth*.csv")), *sorted(root.glob("*.csv"))]
    for path in candidates:
        if not path.is_file():
            continue
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
        if not rows:
            continue
        header = [h.strip() for h in rows[0]]
        if "image_id" in header or "image" in header:
            key = "image_id" if "image_id" in header else "image"
            return {r[header.index(key)]: dict(zip(header, r)) for r in rows[1:] if r}
        # ISIC 2016 ground truth has no header: "ISIC_0000000,benign".
        return {r[0]: {"image_id": r[0], "melanoma": r[1]} for r in rows if len(r) >= 2}
    return {}


def assign_split(group_key: str, val_fraction: float = 0.1, test_fraction: float = 0.1) -> str:
    """Deterministic split by hashing the lesion id, so one lesion never crosses splits."""
    bucket = int(hashlib.sha256(group_key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if bucket < test_fraction:
        return "test"
    if bucket < test_fraction + val_fraction:
        return "val"
    return "train"


def read_dataset(root: str | Path) -> list[Sample]:
    """All samples of a dataset folder, with the given split or a deterministic lesion-grouped one."""
    root = Path(root)
    images = _find_images(root)
    masks = _find_masks(root)
    labels = _read_labels(root)
    samples = []
    for image_id, image_path in images.items():
        row = labels.get(image_id, {})
        melanoma = parse_label(row["melanoma"]) if "melanoma" in row else None
        lesion_id = (row.get("lesion_id") or "").strip() or image_id
        split = (row.get("split") or "").strip() or assign_split(lesion_id)
        samples.append(Sample(image_id, image_path, masks.get(image_id), melanoma, lesion_id, split))
    return samples


def select(samples: list[Sample], split: str | None = None, *, need_mask: bool = False,
           need_label: bool = False, limit: int | None = None) -> list[Sample]:
    chosen = [
        s for s in samples
        if (split is None or s.split == split)
        and (not need_mask or s.mask_path is not None)
        and (not need_label or s.melanoma is not None)
    ]
    return chosen[:limit] if limit else chosen


def list_images(paths: list[str | Path]) -> list[Path]:
    """Expand files and folders given on a command line into image files."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(
                p for p in path.rglob("*")
                if p.suffix.lower() in IMAGE_SUFFIXES and not p.stem.endswith("_segmentation")
                and p.parent.name != "masks"
            ))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such image or folder: {path}")
    return found


def difference_hash(image_path: str | Path, size: int = 16) -> int:
    """A size×size-bit difference hash (dHash): compares neighbouring pixels of a small grey thumbnail, so
    re-encoded, rescaled or slightly recoloured copies of an image hash alike."""
    with Image.open(image_path) as img:
        grey = np.asarray(img.convert("L").resize((size + 1, size), Image.LANCZOS), dtype=np.int16)
    bits = (grey[:, 1:] > grey[:, :-1]).ravel()
    return int("".join("1" if b else "0" for b in bits), 2)


def keep_near_duplicates_together(samples: list[Sample], max_distance: int = 20) -> tuple[list[Sample], list[tuple]]:
    """Images without a lesion id (ISIC 2016/2017) can hold near-duplicate pairs across splits. Each
    pair found by perceptual hash (Hamming distance <= ``max_distance`` of 256 bits: on the shared
    data pairs up to 19 were the same lesion, recoloured or re-cropped, and 25 and above were
    different lesions) is put in one split: the
    earlier split in train < val < test order, so no evaluation image has a twin in training.
    Returns the samples (splits moved) and the pairs moved as (moved id, kept id, distance)."""
    order = {"train": 0, "val": 1, "test": 2}
    candidates = [s for s in samples if s.lesion_id == s.image_id]  # no lesion id recorded
    hashes = {s.image_id: difference_hash(s.image_path) for s in candidates}
    by_id = {s.image_id: s for s in samples}
    moved: list[tuple] = []
    for i, a in enumerate(candidates):
        for b in candidates[i + 1:]:
            distance = bin(hashes[a.image_id] ^ hashes[b.image_id]).count("1")
            if distance > max_distance:
                continue
            sa, sb = by_id[a.image_id], by_id[b.image_id]
            if sa.split == sb.split:
                continue
            keep, move = (sa, sb) if order.get(sa.split, 3) <= order.get(sb.split, 3) else (sb, sa)
            by_id[move.image_id] = Sample(move.image_id, move.image_path, move.mask_path, move.melanoma,
                                          move.lesion_id, keep.split)
            moved.append((move.image_id, keep.image_id, distance))
    return [by_id[s.image_id] for s in samples], moved
