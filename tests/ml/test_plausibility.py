"""The plausibility checks (ml/plausibility.py): junk is refused, lesion pictures are not."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import junk_images
from ml import plausibility


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


@pytest.mark.parametrize("kind,images", [
    ("uniform", junk_images.uniform_images(12)),
    ("noise", junk_images.noise_images(9)),
    ("text", junk_images.text_images(8)),
])
def test_synthetic_junk_is_refused_before_the_model(kind, images):
    reasons = [plausibility.image_refusal(decoded(data)) for data in images]
    assert all(reasons), f"{kind}: {sum(not r for r in reasons)} of {len(reasons)} passed"
    assert all(r.startswith("Not analysable:") for r in reasons)


def test_a_black_frame_with_sensor_noise_is_refused_as_uniform():
    frame = np.clip(np.random.default_rng(0).normal(3, 2, (6000 // 10, 6000 // 10, 3)), 0, 255).astype(np.uint8)
    assert "almost uniform" in plausibility.image_refusal(frame)


def test_lesion_pictures_pass():
    from tests.factories import lesion_image, textured_lesion_image

    for data in [textured_lesion_image(seed=s) for s in range(5)] + [lesion_image(), lesion_image((400, 300))]:
        assert plausibility.image_refusal(decoded(data)) is None


def test_decoder_fill_is_refused_as_damaged():
    from tests.factories import textured_lesion_image

    image = decoded(textured_lesion_image(size=(320, 240))).copy()
    image[80:, :] = 128  # libjpeg's grey after the data ran out: two thirds of the picture
    assert "damaged" in plausibility.image_refusal(image)


def test_mask_refusal_at_its_boundaries():
    size = 100_000
    def mask_with(fraction: float) -> np.ndarray:
        mask = np.zeros(size, np.uint8)
        mask[: int(round(fraction * size))] = 1
        return mask.reshape(250, 400)

    assert "no lesion" in plausibility.mask_refusal(mask_with(0.0))
    assert "no lesion" in plausibility.mask_refusal(mask_with(plausibility.MIN_LESION_FRACTION - 0.0001))
    assert plausibility.mask_refusal(mask_with(plausibility.MIN_LESION_FRACTION)) is None
    assert plausibility.mask_refusal(mask_with(0.5)) is None
    assert plausibility.mask_refusal(mask_with(plausibility.MAX_LESION_FRACTION)) is None
    assert "whole frame" in plausibility.mask_refusal(mask_with(plausibility.MAX_LESION_FRACTION + 0.0001))
    assert "whole frame" in plausibility.mask_refusal(mask_with(1.0))


SHARED = Path(os.environ.get("LESIONTRACK_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
SPLIT = SHARED / "lesions-dev"


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.skipif(not (SPLIT / "labels.csv").is_file(), reason=f"shared dermoscopy data not found at {SPLIT}")
def test_shared_test_split_is_rarely_refused_and_junk_always_is():
    """Under 1% of the shared test split refused (image checks on all of it, the segmenter's
    mask checks on a fixed sample); every uniform, noise, text and heavily bit-flipped image
    refused (the bit-flipped ones mostly at upload, by the strict JPEG decode, the rest by the
    pixel checks)."""
    import csv

    from bench.plausibility import judge, junk_sets
    from ml.inference import Analyzer

    rows = [r for r in csv.DictReader(open(SPLIT / "labels.csv")) if r["split"] == "test"]
    real = [(SPLIT / "images" / f"{r['image_id']}.jpg").read_bytes() for r in rows]
    image_refused = [i for i, data in enumerate(real) if plausibility.image_refusal(decoded(data))]
    assert len(image_refused) / len(real) < 0.01, len(image_refused)
    analyzer = Analyzer(Path(__file__).resolve().parents[2] / "ml" / "models")
    sample = real[::20]
    verdicts = judge(sample, analyzer)
    assert sum(v != "ok" for v in verdicts) / len(sample) < 0.01, [v for v in verdicts if v != "ok"]
    for kind, images in junk_sets(real[:40]).items():
        if "not junk" in kind:
            continue
        verdicts = judge(images, analyzer)
        passed = sum(v.startswith("ok") for v in verdicts)
        assert passed == 0, f"{kind}: {passed} of {len(verdicts)} passed"
    # Other images and seeds, so that the check is not fitted to the first forty.
    others = [junk_images.bit_flipped(data, flips=30, seed=100 + i, within=1.0) for i, data in enumerate(real[100:140])]
    verdicts = judge(others, analyzer)
    assert not any(v.startswith("ok") for v in verdicts), [i + 100 for i, v in enumerate(verdicts) if v.startswith("ok")]
