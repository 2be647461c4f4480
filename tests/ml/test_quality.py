"""Image-quality check (ml/quality.py): synthetic cases at the thresholds, then the shared data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ml import quality


def textured_skin(size: tuple[int, int] = (300, 400), seed: int = 0) -> np.ndarray:
    """Skin with fine texture and a brown lesion with a sharp border, like a focused dermoscopy image."""
    rng = np.random.default_rng(seed)
    height, width = size
    img = np.empty((height, width, 3), np.float32)
    img[:] = (215, 175, 150)
    img += rng.normal(0, 12, (height, width, 1))
    yy, xx = np.mgrid[:height, :width]
    inside = (yy - height / 2) ** 2 + (xx - width / 2) ** 2 < (min(size) / 4) ** 2
    img[inside] = (110, 70, 45) + rng.normal(0, 12, (int(inside.sum()), 1))
    return img.clip(0, 255).astype(np.uint8)


def codes(report: quality.QualityReport) -> set[str]:
    return {i.code for i in report.issues}


def test_a_sharp_well_exposed_image_passes():
    report = quality.check_image(textured_skin())
    assert report.ok, report.as_dict()
    assert report.measures["laplacian_variance"] > quality.MIN_LAPLACIAN_VARIANCE


def test_blur_is_caught_and_named():
    report = quality.check_image(quality.blurred(textured_skin(), sigma_fraction=0.01))
    assert codes(report) == {"blurred"}
    assert "blurred" in report.issues[0].reason


def test_the_blur_measure_does_not_depend_on_resolution():
    small, large = textured_skin((150, 200)), textured_skin((1200, 1600))
    assert quality.check_image(small).ok and quality.check_image(large).ok
    assert "blurred" in codes(quality.check_image(quality.blurred(large)))


def test_over_and_under_exposure_are_caught():
    assert "overexposed" in codes(quality.check_image(quality.overexposed(textured_skin())))
    assert "underexposed" in codes(quality.check_image(quality.underexposed(textured_skin())))


def test_clipped_highlights_just_over_the_limit_flag_and_just_under_do_not():
    img = textured_skin((100, 100))
    flat = img.reshape(-1, 3).copy()
    n = flat.shape[0]
    under, over = flat.copy(), flat.copy()
    under[: int(n * (quality.MAX_CLIPPED_HIGHLIGHTS - 0.02))] = 255
    over[: int(n * (quality.MAX_CLIPPED_HIGHLIGHTS + 0.02))] = 255
    # WORKING_SIDE resizing is a no-op on neither; use the working size so pixels map 1:1.
    assert "overexposed" not in codes(quality.check_image(under.reshape(img.shape)))
    assert "overexposed" in codes(quality.check_image(over.reshape(img.shape)))


def test_grey_images_are_accepted():
    assert quality.check_image(textured_skin()[..., 0]).measures["laplacian_variance"] > 0


def disc_mask(size=(200, 200), centre=(100, 100), radius=40) -> np.ndarray:
    yy, xx = np.mgrid[: size[0], : size[1]]
    return (((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) < radius**2).astype(np.uint8)


def test_a_centred_lesion_is_framed_well():
    assert quality.check_framing(disc_mask()).ok


def test_a_lesion_cut_by_the_border_is_flagged():
    cut = disc_mask(centre=(100, -5), radius=60)  # more than half of it lies beyond the left edge
    report = quality.check_framing(cut)
    assert codes(report) == {"lesion_cut"}
    assert report.measures["outline_on_border"] > quality.MAX_OUTLINE_ON_BORDER


def test_a_lesion_touching_the_border_a_little_is_not_flagged():
    touching = disc_mask(centre=(100, 38), radius=40)  # grazes the edge over a few pixels
    assert touching.any(axis=0)[0]
    assert quality.check_framing(touching).ok


def test_a_tiny_lesion_is_flagged_and_an_empty_mask_is_left_to_the_analysis():
    assert codes(quality.check_framing(disc_mask(size=(400, 400), centre=(200, 200), radius=10))) == {"lesion_small"}
    assert quality.check_framing(np.zeros((50, 50), np.uint8)).ok


def test_the_module_stays_free_of_django():
    import ast

    tree = ast.parse(Path(quality.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(name.split(".")[0] in {"django", "lesions", "clinic", "config"} for name in imported)


SHARED = Path(os.environ.get("LESIONTRACK_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"
                             / "lesions-dev"))
if not (SHARED / "labels.csv").is_file():
    SHARED = Path("/work/shared/data/lesions-dev")


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "labels.csv").is_file(), reason=f"shared dermoscopy data not found at {SHARED}")
def test_on_the_shared_test_split_few_false_alarms_and_most_poor_copies_caught():
    results = quality.evaluate(SHARED, "test")
    assert results["images"] > 1000
    assert results["false_alarm_rate_image"] < 0.02
    assert results["false_alarm_rate_framing"] < 0.02
    assert results["false_alarm_rate_any"] < 0.02
    assert results["blurred_catch_rate"] > 0.90
    assert results["overexposed_catch_rate"] > 0.90


def test_framing_records_the_lesion_centroid_as_fractions():
    measures = quality.check_framing(disc_mask(size=(200, 400), centre=(50, 300), radius=20)).measures
    assert measures["centroid_x"] == pytest.approx(300.5 / 400, abs=0.005)
    assert measures["centroid_y"] == pytest.approx(50.5 / 200, abs=0.005)
    assert "centroid_x" not in quality.check_framing(np.zeros((10, 10))).measures
