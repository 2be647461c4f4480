"""The ISIC 2016 challenge download is read as published (ml/isic2016.py): the official split from
the folders, masks from the sibling ground-truth folders in any suffix case, Part 3's labels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ml.data import assign_split
from ml.isic2016 import ISIC2016LayoutError, is_isic2016, read_isic2016, split_summary

TRAINING = {"ISIC_0000000": "benign", "ISIC_0000001": "malignant", "ISIC_0000002": "benign",
            "ISIC_0000004": "malignant", "ISIC_0000006": "benign"}
TEST = {"ISIC_0000003": "0.0", "ISIC_0000005": "1.0", "ISIC_0000009": "0.0"}
MASK_SUFFIXES = ["_Segmentation.png", "_segmentation.PNG", "_SEGMENTATION.png"]


def fake_isic2016(root, *, skip_mask=None):
    """A tiny ISIC 2016 tree: Part 1 images and masks (mixed-case mask names), Part 3's images
    (the same training images again) and its two ground-truth CSVs."""
    for split, ids in (("Training", TRAINING), ("Test", TEST)):
        data = root / f"ISBI2016_ISIC_Part1_{split}_Data"
        truth = root / f"ISBI2016_ISIC_Part1_{split}_GroundTruth"
        data.mkdir(parents=True)
        truth.mkdir()
        for n, image_id in enumerate(ids):
            Image.fromarray(np.full((30, 40, 3), 100 + n, np.uint8)).save(data / f"{image_id}.jpg")
            if image_id != skip_mask:
                mask = np.zeros((30, 40), np.uint8)
                mask[5:20, 10:30] = 255
                Image.fromarray(mask).save(truth / f"{image_id}{MASK_SUFFIXES[n % 3]}", format="PNG")
    part3 = root / "ISBI2016_ISIC_Part3_Training_Data"
    part3.mkdir()
    for image_id in TRAINING:
        Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(part3 / f"{image_id}.jpg")
    (root / "ISBI2016_ISIC_Part3_Training_GroundTruth.csv").write_text(
        "".join(f"{i},{label}\n" for i, label in TRAINING.items()))
    (root / "ISBI2016_ISIC_Part3_Test_GroundTruth.csv").write_text(
        "".join(f"{i},{label}\n" for i, label in TEST.items()))
    return root


def test_official_split_comes_from_the_folders_and_val_is_drawn_from_training(tmp_path):
    root = fake_isic2016(tmp_path / "isic2016")
    assert is_isic2016(root)
    samples = read_isic2016(root, val_fraction=0.4)
    by_id = {s.image_id: s for s in samples}
    assert len(samples) == len(by_id) == 8  # Part 3's copies of the training images are not read twice
    assert {i for i, s in by_id.items() if s.split == "test"} == set(TEST)
    assert {i for i, s in by_id.items() if s.split in {"train", "val"}} == set(TRAINING)
    # Validation is deterministic by image id, and never touches the official test folder.
    assert all(by_id[i].split == assign_split(i, 0.4, test_fraction=0.0) for i in TRAINING)
    assert all(s.image_path.parent.name == "ISBI2016_ISIC_Part1_Training_Data" for s in samples if s.split != "test")
    assert all(s.lesion_id == s.image_id for s in samples)
    assert {s.split for s in read_isic2016(root, val_fraction=0.0)} == {"train", "test"}
    summary = split_summary(samples)
    assert "5 training images" in summary and "3 test images" in summary and "NOT the official 900/379" in summary


def test_masks_are_paired_from_the_sibling_ground_truth_folder_in_any_case(tmp_path):
    samples = read_isic2016(fake_isic2016(tmp_path))
    for s in samples:
        official = "Test" if s.split == "test" else "Training"
        assert s.mask_path.parent.name == f"ISBI2016_ISIC_Part1_{official}_GroundTruth"
        assert s.mask_path.name.lower() == f"{s.image_id.lower()}_segmentation.png"
    suffixes = {s.mask_path.name[len(s.image_id):] for s in samples}
    assert suffixes == set(MASK_SUFFIXES)


def test_labels_come_from_part3_and_malignant_means_melanoma(tmp_path):
    samples = read_isic2016(fake_isic2016(tmp_path))
    labels = {s.image_id: s.melanoma for s in samples}
    assert labels == {"ISIC_0000000": 0, "ISIC_0000001": 1, "ISIC_0000002": 0, "ISIC_0000004": 1,
                      "ISIC_0000006": 0, "ISIC_0000003": 0, "ISIC_0000005": 1, "ISIC_0000009": 0}


def test_a_header_row_is_skipped_and_an_unknown_label_is_an_error(tmp_path):
    root = fake_isic2016(tmp_path)
    csv_path = root / "ISBI2016_ISIC_Part3_Test_GroundTruth.csv"
    csv_path.write_text("image_id,melanoma\n" + csv_path.read_text())
    assert {s.image_id: s.melanoma for s in read_isic2016(root) if s.split == "test"} == {
        "ISIC_0000003": 0, "ISIC_0000005": 1, "ISIC_0000009": 0}
    csv_path.write_text(csv_path.read_text() + "ISIC_0000010,nevus\n")
    with pytest.raises(ISIC2016LayoutError, match=r"line 5: label 'nevus'"):
        read_isic2016(root)


def test_a_missing_mask_is_a_clear_error(tmp_path):
    root = fake_isic2016(tmp_path, skip_mask="ISIC_0000005")
    with pytest.raises(ISIC2016LayoutError, match=r"1 Test image\(s\) have no <id>_Segmentation.png in "
                                                   r"ISBI2016_ISIC_Part1_Test_GroundTruth: ISIC_0000005"):
        read_isic2016(root)
    # Asked not to require masks, the image is read without one.
    loose = {s.image_id: s for s in read_isic2016(root, require_masks=False)}
    assert loose["ISIC_0000005"].mask_path is None and loose["ISIC_0000003"].mask_path is not None


def test_a_missing_ground_truth_folder_and_a_folder_without_isic2016_data_are_errors(tmp_path):
    root = fake_isic2016(tmp_path / "isic")
    for path in (root / "ISBI2016_ISIC_Part1_Training_GroundTruth").iterdir():
        path.unlink()
    (root / "ISBI2016_ISIC_Part1_Training_GroundTruth").rmdir()
    with pytest.raises(ISIC2016LayoutError, match="no ISBI2016_ISIC_Part1_Training_GroundTruth folder"):
        read_isic2016(root)
    (tmp_path / "empty").mkdir()
    assert not is_isic2016(tmp_path / "empty")
    with pytest.raises(ISIC2016LayoutError, match="holds no ISBI2016_ISIC_Part1_Training_Data"):
        read_isic2016(tmp_path / "empty")
