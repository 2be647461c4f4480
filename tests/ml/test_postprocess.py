"""The outline and heat map drawn over a capture (ml/postprocess.py)."""

from __future__ import annotations

import numpy as np
import pytest

from ml.postprocess import heatmap_overlay, outline


@pytest.mark.parametrize("heat,expected", [
    # (1 - 0.45) · 100 + 0.45 · 255 · ramp, truncated; the ramp is blue at 0, green at 0.5, red at 1.
    (0.0, (55, 55, 169)), (0.5, (112, 169, 112)), (1.0, (169, 55, 55)),
    (1.7, (169, 55, 55)), (-0.3, (55, 55, 169)),  # outside 0..1: clipped first
])
def test_the_heat_map_blends_a_blue_to_red_ramp_over_the_image(heat, expected):
    image = np.full((30, 40, 3), 100, np.uint8)
    blended = heatmap_overlay(image, np.full((7, 7), heat, np.float32))
    assert blended.dtype == np.uint8 and blended.shape == image.shape
    assert (blended == expected).all()


def test_the_heat_map_leaves_the_image_where_alpha_is_zero_and_follows_the_map_across_it():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    heat = np.linspace(0, 1, 8, dtype=np.float32)[None, :].repeat(6, axis=0)
    assert np.array_equal(heatmap_overlay(image, heat, alpha=0.0), image)
    reds = heatmap_overlay(np.zeros_like(image), heat, alpha=1.0)[..., 0]
    assert (np.diff(reds[12].astype(int)) >= 0).all() and reds[12, 0] < 20 and reds[12, -1] > 235


def test_the_outline_is_the_lesions_border_band():
    mask = np.zeros((20, 20), np.uint8)
    mask[5:15, 5:15] = 1
    band = outline(mask, thickness=2)
    assert band.sum() == 100 - 36 and band[5, 5] and band[6, 6] and not band[7, 7] and not band[4, 4]
    edge = np.ones((6, 6), np.uint8)  # a lesion filling the frame: its border is the frame's
    assert outline(edge, thickness=1).sum() == 20
