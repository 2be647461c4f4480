"""Synthetic junk for the plausibility checks: images that are not skin-lesion captures.

Deterministic (seeded). Used by bench/plausibility.py and by the tests; no shared data needed
except for the bit-flipped kind, which corrupts real JPEGs passed in.
"""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
WORDS = ("patient referral letter dermatology clinic lesion follow up appointment scan report "
         "histopathology biopsy margin clear review date signed consultant").split()


def png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def jpeg(array: np.ndarray, quality: int = 90) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def uniform_images(count: int, seed: int = 0) -> list[bytes]:
    """Blank frames: black, white, grey, skin-coloured, with a little sensor noise in some."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        h, w = int(rng.integers(300, 1200)), int(rng.integers(300, 1200))
        colour = rng.integers(0, 256, 3) if i % 4 else np.array([0, 0, 0][:3]) + 255 * (i % 8 == 4)
        frame = np.broadcast_to(colour, (h, w, 3)).astype(np.float32)
        if i % 2:
            frame = frame + rng.normal(0, 2.0, frame.shape)  # a dark lens cap still has sensor noise
        frame = np.clip(frame, 0, 255)
        images.append(png(frame) if i % 3 else jpeg(frame))
    return images


def noise_images(count: int, seed: int = 1) -> list[bytes]:
    """Uniform, Gaussian and coloured-channel noise."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        h, w = int(rng.integers(200, 900)), int(rng.integers(200, 900))
        if i % 3 == 0:
            frame = rng.integers(0, 256, (h, w, 3))
        elif i % 3 == 1:
            frame = np.clip(rng.normal(128, 60, (h, w, 3)), 0, 255)
        else:
            frame = np.clip(rng.normal(rng.integers(60, 200, 3), 50, (h, w, 3)), 0, 255)
        images.append(png(frame) if i % 2 else jpeg(frame))
    return images


def text_images(count: int, seed: int = 2) -> list[bytes]:
    """Rendered text: letters, screenshots of notes, dark-mode pages."""
    rng = random.Random(seed)
    images = []
    for i in range(count):
        w, h = rng.randint(500, 1400), rng.randint(400, 1100)
        dark = i % 4 == 3
        background = (30, 30, 34) if dark else tuple(rng.randint(225, 255) for _ in range(3))
        ink = (220, 220, 220) if dark else tuple(rng.randint(0, 60) for _ in range(3))
        canvas = Image.new("RGB", (w, h), background)
        draw = ImageDraw.Draw(canvas)
        size = rng.randint(14, 40)
        font = ImageFont.truetype(FONT, size)
        y = rng.randint(5, 40)
        while y < h - size:
            line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
            draw.text((rng.randint(5, 40), y), line, fill=ink, font=font)
            y += int(size * rng.uniform(1.3, 2.2))
        out = io.BytesIO()
        canvas.save(out, format="PNG" if i % 2 else "JPEG", quality=90)
        images.append(out.getvalue())
    return images


def bit_flipped(jpeg_bytes: bytes, *, flips: int, seed: int, within: float = 0.5) -> bytes:
    """Flip `flips` random bits in the first `within` share of a JPEG's entropy-coded data
    (after the start-of-scan header), so that most of the decoded picture is corrupt."""
    data = bytearray(jpeg_bytes)
    sos = data.find(b"\xff\xda")
    if sos < 0:
        raise ValueError("not a baseline JPEG")
    start = sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big")
    end = start + int((len(data) - 2 - start) * within)
    rng = random.Random(seed)
    for _ in range(flips):
        position = rng.randrange(start, max(start + 1, end))
        data[position] ^= 1 << rng.randrange(8)
    return bytes(data)
