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


def _flat_blocks_by_definition(rgb: np.ndarray) -> float:
    """Share of whole 8x8 blocks whose every channel spans at most 1 level, whose mean is 24 or more,
    and whose colour (each channel's highest level) is within FILL_COLOUR_TOLERANCE of the colour
    most such blocks have."""
    blocks = [rgb[y:y + 8, x:x + 8].astype(int) for y in range(0, rgb.shape[0] - 7, 8)
              for x in range(0, rgb.shape[1] - 7, 8)]
    flat = [tuple(b.max(axis=(0, 1))) for b in blocks
            if (b.max(axis=(0, 1)) - b.min(axis=(0, 1))).max() <= 1 and b.mean() >= 24]
    if not flat:
        return 0.0
    fill = max(sorted(set(flat)), key=flat.count)  # the commonest; the lowest of equally common ones
    same = [c for c in flat if max(abs(a - b) for a, b in zip(c, fill)) <= plausibility.FILL_COLOUR_TOLERANCE]
    return len(same) / len(blocks)


def _seam_excess_by_definition(rgb: np.ndarray) -> float:
    """Per row boundary, the share of columns whose largest channel step exceeds SEAM_STEP; the best
    grid phase's sum over its rows minus what the other rows' mean predicts."""
    pixels = rgb.astype(int)
    jumps = [float(np.mean([max(abs(pixels[y + 1, x] - pixels[y, x])) > plausibility.SEAM_STEP
                            for x in range(rgb.shape[1])])) for y in range(rgb.shape[0] - 1)]
    best = 0.0
    for phase in range(8):
        on = [jumps[y] for y in range(len(jumps)) if y % 8 == phase]
        off = [jumps[y] for y in range(len(jumps)) if y % 8 != phase]
        best = max(best, sum(on) - np.mean(off) * len(on))
    return best


@pytest.mark.parametrize("shape", [(64, 72), (61, 77), (40, 33)])
def test_block_and_seam_measures_follow_their_definitions(shape):
    """The whole-array arithmetic gives what the definitions say, pixel by pixel, on an image with
    decoder-fill blocks (bright, and dark ones that do not count), seams on the block grid, a
    partial last block row and column, and values at both ends of the range."""
    rng = np.random.default_rng(shape[0])
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    rgb = np.stack([yy + xx, 2 * xx, 200 - yy], axis=-1) + rng.integers(0, 3, (*shape, 3))
    rgb = rgb.clip(0, 255).astype(np.uint8)
    rgb[34:, :20] = rng.integers(0, 256, (shape[0] - 34, 20, 3))  # full-range noise
    rgb[8:16, 8:24] = (128, 127, 129)  # two flat bright blocks
    rgb[16:24, 0:8] = 129
    rgb[16:24, 0:8:2, 1] = 128  # one level of spread: still flat
    rgb[0:8, 16:24] = 10  # flat but dark
    rgb[24:32, 8:16] = (255, 0, 255)  # flat, mean 170
    rgb[24:32, 16:24] = 100
    rgb[24, 16:24] = 102  # two levels of spread: not flat
    rgb[32:, :] = np.clip(rgb[32:].astype(int) + 60, 0, 255).astype(np.uint8)  # a seam at row 32
    assert plausibility._flat_block_fraction(rgb) == pytest.approx(_flat_blocks_by_definition(rgb), abs=1e-12)
    assert plausibility._flat_block_fraction(rgb) > 0
    assert plausibility._grid_seam_excess(rgb) == pytest.approx(_seam_excess_by_definition(rgb), abs=1e-9)
    assert plausibility._grid_seam_excess(rgb) > 0.5  # the seam on the grid stands out


def test_a_smooth_picture_scaled_up_is_not_taken_for_decoder_fill():
    """Scaled up (or strongly denoised), a picture has many flat 8x8 blocks, each the colour of its
    part of the picture; a decoder's fill repeats one colour."""
    from PIL import ImageFilter

    from tests.factories import textured_lesion_image

    small = Image.fromarray(decoded(textured_lesion_image(size=(200, 150)))).filter(ImageFilter.GaussianBlur(1))
    large = np.asarray(small.resize((3200, 2400), Image.BICUBIC))
    sampled = [large[y:y + 8, x:x + 8] for y in range(0, 2400, 64) for x in range(0, 3200, 64)]
    flat_anywhere = float(np.mean([(b.max(axis=(0, 1)) - b.min(axis=(0, 1))).max() <= 1 for b in sampled]))
    assert flat_anywhere > plausibility.MAX_FLAT_RUN_FRACTION  # many flat blocks: the old measure refused it
    assert plausibility.image_refusal(large) is None
    filled = large.copy()
    filled[800:] = 128  # the same picture with libjpeg's grey fill
    assert "damaged" in plausibility.image_refusal(filled)


@pytest.mark.parametrize("fill,counted", [((24, 24, 24), True), ((23, 24, 24), False), ((24, 24, 25), True)])
def test_a_fill_counts_from_a_block_mean_of_24_up(fill, counted):
    """Decoder fill is not dark: a block whose mean is 24 or more counts, one under 24 does not (a
    dermoscope's black vignette)."""
    rgb = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    rgb[32:] = fill
    assert plausibility._flat_block_fraction(rgb) == (0.5 if counted else 0.0)
