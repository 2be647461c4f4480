"""Reading the ISIC 2016 challenge (ISBI 2016) download as published, the data of the seed report.

The layout, each zip unpacked beside the others under one folder::

    ISBI2016_ISIC_Part1_Training_Data/ISIC_0000000.jpg            900 images
    ISBI2016_ISIC_Part1_Training_GroundTruth/ISIC_0000000_Segmentation.png
    ISBI2016_ISIC_Part1_Test_Data/ISIC_0000003.jpg                379 images
    ISBI2016_ISIC_Part1_Test_GroundTruth/ISIC_0000003_Segmentation.png
    ISBI2016_ISIC_Part3_Training_GroundTruth.csv                  ISIC_0000000,benign (or malignant)
    ISBI2016_ISIC_Part3_Test_GroundTruth.csv                      ISIC_0000003,0.0 (or 1.0)

(Part 3's own ``..._Data`` folders hold the same images and are read too when Part 1's are absent.)
The official split is the folder an image is in: Training or Test. Validation images are drawn
from Training, deterministically by image id, because the challenge published no validation set
and the operating threshold and model choice must not look at Test. ISIC 2016's "malignant" class
is melanoma, so malignant (or 1) reads as melanoma = 1.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

from ml.data import IMAGE_SUFFIXES, Sample, assign_split, parse_label

OFFICIAL_IMAGES = {"Training": 900, "Test": 379}
VAL_FRACTION = 0.2
_DATA_FOLDER = re.compile(r"^ISBI2016_ISIC_Part(?P<part>[13])_(?P<split>Training|Test)_Data$", re.I)
_MASK_FOLDER = re.compile(r"^ISBI2016_ISIC_Part1_(?P<split>Training|Test)_GroundTruth$", re.I)
_LABELS_FILE = re.compile(r"^ISBI2016_ISIC_Part3_(?P<split>Training|Test)_GroundTruth\.csv$", re.I)
_MASK_NAME = re.compile(r"^(?P<id>.+)_segmentation$", re.I)


class ISIC2016LayoutError(ValueError):
    """The folder is not (a complete) ISIC 2016 download; the message says what is missing."""


def is_isic2016(root: str | Path) -> bool:
    """Whether the folder holds an ISIC 2016 challenge image folder (at any depth)."""
    return any(_DATA_FOLDER.match(p.name) for p in Path(root).rglob("*") if p.is_dir())


def _official(name: str) -> str:
    return "Training" if name.lower() == "training" else "Test"


def _images_by_split(root: Path) -> dict[str, dict[str, Path]]:
    """{"Training"/"Test": {image id: path}}, Part 1's copy of an image preferred over Part 3's."""
    found: dict[str, dict[str, Path]] = {"Training": {}, "Test": {}}
    folders = sorted((p for p in root.rglob("*") if p.is_dir() and _DATA_FOLDER.match(p.name)),
                     key=lambda p: (_DATA_FOLDER.match(p.name)["part"], str(p)))
    for folder in folders:
        split = _official(_DATA_FOLDER.match(folder.name)["split"])
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES and not _MASK_NAME.match(path.stem) \
                    and not path.stem.lower().endswith("_superpixels"):
                found[split].setdefault(path.stem, path)
    return found


def _masks_by_split(root: Path) -> dict[str, dict[str, Path] | None]:
    """{"Training"/"Test": {image id (lower case): mask path}}, or None where the folder is absent.
    Mask names end in ``_Segmentation.png`` in any case (``_segmentation.PNG`` too)."""
    found: dict[str, dict[str, Path] | None] = {"Training": None, "Test": None}
    for folder in sorted(p for p in root.rglob("*") if p.is_dir() and _MASK_FOLDER.match(p.name)):
        masks = found[_official(_MASK_FOLDER.match(folder.name)["split"])]
        if masks is None:
            masks = found[_official(_MASK_FOLDER.match(folder.name)["split"])] = {}
        for path in folder.iterdir():
            match = _MASK_NAME.match(path.stem)
            if match and path.suffix.lower() == ".png":
                masks[match["id"].lower()] = path
    return found


def _labels_by_split(root: Path) -> dict[str, dict[str, int]]:
    """{"Training"/"Test": {image id (lower case): melanoma 0/1}} from Part 3's ground-truth CSVs."""
    found: dict[str, dict[str, int]] = {"Training": {}, "Test": {}}
    for path in sorted(p for p in root.rglob("*.csv") if _LABELS_FILE.match(p.name)):
        labels = found[_official(_LABELS_FILE.match(path.name)["split"])]
        with path.open(newline="") as handle:
            for line, row in enumerate(csv.reader(handle), start=1):
                if len(row) < 2 or not row[0].strip():
                    continue
                value = parse_label(row[1])
                if value is None:
                    if line == 1:  # a header row ("image_id,melanoma")
                        continue
                    raise ISIC2016LayoutError(f"{path.name} line {line}: label {row[1]!r} is not "
                                              "benign/malignant or 0/1")
                labels[row[0].strip().lower()] = value
    return found


def read_isic2016(root: str | Path, *, val_fraction: float = VAL_FRACTION, require_masks: bool = True) -> list[Sample]:
    """Every image of an ISIC 2016 download as the ``Sample`` records the rest of ml/ uses: split
    "test" for the official Test folder, "train" or "val" (``val_fraction`` of them, by image id)
    for the official Training folder; the mask from the sibling Part 1 ground-truth folder; the
    melanoma label from Part 3's CSV (None where that CSV is absent).

    With ``require_masks`` an image whose mask is missing, or whose split has no ground-truth
    folder, is an error that names them, rather than an image silently left out of an experiment.
    """
    root = Path(root)
    if not root.is_dir():
        raise ISIC2016LayoutError(f"no such folder: {root}")
    images = _images_by_split(root)
    if not any(images.values()):
        raise ISIC2016LayoutError(f"{root} holds no ISBI2016_ISIC_Part1_Training_Data or ..._Test_Data folder "
                                  "with images (unpack the ISIC 2016 challenge zips there)")
    masks = _masks_by_split(root)
    labels = _labels_by_split(root)
    samples: list[Sample] = []
    for official, by_id in images.items():
        split_masks = masks[official]
        if require_masks and by_id and split_masks is None:
            raise ISIC2016LayoutError(f"no ISBI2016_ISIC_Part1_{official}_GroundTruth folder under {root} "
                                      f"for the {len(by_id)} {official} images")
        missing = [i for i in by_id if split_masks is not None and i.lower() not in split_masks]
        if require_masks and missing:
            raise ISIC2016LayoutError(
                f"{len(missing)} {official} image(s) have no <id>_Segmentation.png in "
                f"ISBI2016_ISIC_Part1_{official}_GroundTruth: {', '.join(sorted(missing)[:5])}"
                + (" ..." if len(missing) > 5 else ""))
        for image_id, path in by_id.items():
            split = "test" if official == "Test" else assign_split(image_id, val_fraction, test_fraction=0.0)
            mask = split_masks.get(image_id.lower()) if split_masks is not None else None
            samples.append(Sample(image_id, path, mask, labels[official].get(image_id.lower()), image_id, split))
    return samples


def split_summary(samples: list[Sample]) -> str:
    """Images per split, and whether the official 900 training / 379 test split is complete."""
    counts = Counter(s.split for s in samples)
    training, test = counts["train"] + counts["val"], counts["test"]
    line = (f"ISIC 2016: {training} training images ({counts['train']} train + {counts['val']} val), "
            f"{test} test images")
    if (training, test) != (OFFICIAL_IMAGES["Training"], OFFICIAL_IMAGES["Test"]):
        line += (f"; NOT the official {OFFICIAL_IMAGES['Training']}/{OFFICIAL_IMAGES['Test']} split, "
                 "so the numbers are not comparable with the report's")
    return line
