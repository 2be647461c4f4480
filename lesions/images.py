"""Checking uploaded images by their content and storing a clean copy.

The stored copy is re-encoded from decoded pixels: EXIF orientation is applied first, then
nothing of the original metadata (GPS, device serials, timestamps, ICC) is carried over.
The SHA-256 of the bytes as received is kept for integrity.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from PIL import Image, ImageOps, UnidentifiedImageError

ACCEPTED_FORMATS = {"JPEG": "jpg", "PNG": "png"}


@dataclass(frozen=True)
class CleanImage:
    content: bytes
    extension: str
    sha256: str
    width: int
    height: int


def clean_image_bytes(data: bytes, *, max_bytes: int | None = None, max_pixels: int | None = None) -> CleanImage:
    """Validate and re-encode an upload; raise ValidationError with a message a clinician can act on."""
    max_bytes = max_bytes or settings.UPLOAD_MAX_BYTES
    max_pixels = max_pixels or settings.UPLOAD_MAX_PIXELS
    if not data:
        raise ValidationError("The file is empty.", code="empty")
    if len(data) > max_bytes:
        raise ValidationError(f"The file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB.",
                              code="too_large")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its pixel limit; here any excess is an error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                fmt = probe.format
                width, height = probe.size
                if fmt not in ACCEPTED_FORMATS:
                    raise ValidationError(f"{fmt or 'This'} files are not accepted; upload a JPEG or PNG image.",
                                          code="format")
                if width * height > max_pixels:
                    raise ValidationError(
                        f"The image is {width}×{height} pixels; the limit is {max_pixels / 1e6:.0f} megapixels.",
                        code="too_many_pixels")
                probe.load()  # full decode: truncated or corrupt files fail here
                image = ImageOps.exif_transpose(probe).convert("RGB")
    except ValidationError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValidationError("The image has too many pixels to be processed safely.", code="too_many_pixels") from exc
    except UnidentifiedImageError as exc:
        raise ValidationError("The file is not an image we can read; upload a JPEG or PNG image.",
                              code="format") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValidationError(f"The image is damaged or incomplete ({exc}).", code="corrupt") from exc
    out = io.BytesIO()
    extension = ACCEPTED_FORMATS[fmt]
    if extension == "jpg":
        image.save(out, format="JPEG", quality=95, subsampling=0)
    else:
        image.save(out, format="PNG", optimize=False)
    return CleanImage(out.getvalue(), extension, hashlib.sha256(data).hexdigest(), image.width, image.height)


def encode_png(array) -> bytes:
    """An RGB or L numpy array as PNG bytes (analysis outputs: masks, overlays, heat maps)."""
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def decode_rgb(data: bytes):
    """Stored image bytes to an RGB numpy array (the worker side)."""
    import numpy as np  # noqa: PLC0415 -- worker side only: the web process that validates uploads loads no numpy

    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return np.asarray(img.convert("RGB"))


def thumbnail_png(data: bytes, size: int = 256) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")
        img.thumbnail((size, size))
        out = io.BytesIO()
        img.save(out, format="PNG")
        return out.getvalue()
