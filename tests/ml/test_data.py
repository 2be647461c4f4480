from __future__ import annotations

import numpy as np
from PIL import Image

from ml.data import assign_split, list_images, read_dataset, select
from ml.preprocessing import apply_mask, center_crop_box, channel_stats, resize_image, resize_mask


def write_image(path, size=(40, 30)):
    Image.fromarray(np.full((size[1], size[0], 3), 120, np.uint8)).save(path)


def test_isic_challenge_layout_with_headerless_ground_truth(tmp_path):
    for i in range(3):
        write_image(tmp_path / f"ISIC_000000{i}.jpg")
        Image.fromarray(np.zeros((30, 40), np.uint8)).save(tmp_path / f"ISIC_000000{i}_segmentation.png")
    (tmp_path / "ISBI2016_ISIC_Part3_Training_GroundTruth.csv").write_text(
        "ISIC_0000000,benign\nISIC_0000001,malignant\nISIC_0000002,0.0\n")
    samples = {s.image_id: s for s in read_dataset(tmp_path)}
    assert set(samples) == {"ISIC_0000000", "ISIC_0000001", "ISIC_0000002"}
    assert [samples[k].melanoma for k in sorted(samples)] == [0, 1, 0]
    assert all(s.mask_path is not None for s in samples.values())
    assert all(s.split in {"train", "val", "test"} for s in samples.values())


def test_shared_layout_uses_given_split_and_lesion_ids(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("a", "b", "c"):
        write_image(tmp_path / "images" / f"{name}.jpg")
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(tmp_path / "masks" / "a.png")
    (tmp_path / "labels.csv").write_text("image_id,melanoma,lesion_id,split\na,1,L1,train\nb,0,L1,train\nc,0,,test\n")
    samples = read_dataset(tmp_path)
    assert len(select(samples, "train")) == 2 and len(select(samples, "test")) == 1
    assert len(select(samples, need_mask=True)) == 1
    assert {s.lesion_id for s in samples} == {"L1", "c"}
    assert len(list_images([tmp_path])) == 3  # masks are not images to predict


def test_deterministic_split_keeps_a_lesion_together():
    assert assign_split("HAM_0000001") == assign_split("HAM_0000001")
    splits = [assign_split(f"L{i}") for i in range(2000)]
    assert 0.07 < splits.count("test") / 2000 < 0.13 and 0.07 < splits.count("val") / 2000 < 0.13


def test_crop_resize_and_mask_stay_aligned():
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, 100:] = 255
    mask = (image[..., 0] > 0).astype(np.uint8)
    assert center_crop_box(200, 100, 1.0) == (50, 0, 150, 100)
    small = resize_image(image, (32, 32), crop=True)
    small_mask = resize_mask(mask, (32, 32), crop=True)
    assert small.shape == (32, 32, 3) and small_mask.shape == (32, 32)
    assert ((small[..., 0] > 127) == (small_mask > 0)).mean() > 0.95
    masked = apply_mask(image, mask)
    assert masked[:, :100].max() == 0 and masked[:, 100:].min() == 255


def test_channel_stats():
    stack = np.zeros((600, 2, 2, 3), np.uint8)
    stack[::2] = 100
    mean, var = channel_stats(stack)
    np.testing.assert_allclose(mean, [50, 50, 50])
    np.testing.assert_allclose(var, [2500, 2500, 2500])
