"""Synthetic lesion pictures for tests, seeding and benchmarks: a dark lesion on skin-coloured
background. The one drawing of it, so tests, seeds and benchmarks cannot drift apart; no real
images are needed for timing or for exercising the pipeline."""

from __future__ import annotations

import numpy as np

SKIN = (222, 184, 160)
LESION = (95, 55, 35)


def synthetic_lesion(height: int, width: int, *, radius: float | None = None, aspect: float = 1.0,
                     skin: tuple[int, int, int] = SKIN, lesion: tuple[int, int, int] = LESION,
                     noise_sd: float = 0.0, seed: int = 0) -> np.ndarray:
    """An H×W×3 uint8 picture with a centred elliptical lesion.

    radius: the vertical semi-axis in pixels (default: a quarter of the shorter side);
    aspect: horizontal stretch (the horizontal semi-axis is radius / aspect);
    noise_sd: Gaussian texture added to every pixel (0 keeps the picture flat).
    """
    radius = min(height, width) / 4 if radius is None else radius
    yy, xx = np.mgrid[:height, :width]
    inside = (yy - height / 2) ** 2 + ((xx - width / 2) * aspect) ** 2 < radius**2
    img = np.empty((height, width, 3), np.float32)
    img[:] = skin
    img[inside] = lesion
    if noise_sd:
        img += np.random.default_rng(seed).normal(0, noise_sd, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def synthetic_capture(seed: int, size: tuple[int, int] = (450, 600)) -> np.ndarray:
    """A dermoscopy-sized, textured picture whose lesion size and shape vary with the seed."""
    rng = np.random.default_rng(seed)
    height, width = size
    return synthetic_lesion(height, width, radius=rng.uniform(0.2, 0.35) * min(height, width),
                            aspect=rng.uniform(0.7, 1.2), skin=(215, 175, 150), lesion=(100, 60, 40),
                            noise_sd=12, seed=seed)
