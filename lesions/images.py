"""Checking uploaded images by their content and storing a clean copy.

The stored copy is rebuilt from decoded pixels: EXIF orientation is applied and an embedded
colour profile is converted to sRGB first, then a new image is made from the pixel values
alone, so nothing of the original file (EXIF with GPS and serials, XMP, JPEG comments, ICC
profiles, PNG text chunks) can be carried over by the encoder. The SHA-256 of the bytes as
received is kept for integrity.

Pixel work is bounded before decoding: an image above UPLOAD_MAX_PIXELS is refused from its
header; a JPEG above UPLOAD_MAX_DECODE_PIXELS is decoded at 1/2, 1/4 or 1/8 scale by the JPEG
decoder itself (Pillow's draft()), so a 6,300 × 6,300 photo never costs a full-size decode;
a PNG above it cannot be decoded at a reduced scale and is refused with the limit.

A JPEG whose entropy-coded data is damaged is refused too. Pillow's JPEG decoder fails only on
fatal errors: where libjpeg finds corrupt data it warns, fills in or guesses, and Pillow returns
the picture silently (broken blocks, colour or brightness drifting from the damage on). A second,
strict decode with libjpeg-turbo (simplejpeg, at 1/8 scale: the Huffman data is still read in
full, only the inverse DCT is smaller) turns those warnings into a refusal.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from PIL import ExifTags, Image, ImageCms, ImageOps, UnidentifiedImageError

ACCEPTED_FORMATS = {"JPEG": "jpg", "PNG": "png"}
JPEG_DECODER_SCALES = (2, 4, 8)  # the reductions libjpeg can apply while decoding
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
# libjpeg warnings about headers only (the pixels decode as written): not damage.
HARMLESS_JPEG_WARNINGS = ("unknown JFIF revision", "Unknown Adobe color transform", "bad ICC marker",
                          "Invalid SOS parameters for sequential JPEG")


@dataclass(frozen=True)
class CleanImage:
    content: bytes
    extension: str
    sha256: str
    width: int
    height: int
    # How many original pixels one stored pixel spans across (1 unless decoded at a reduced scale);
    # a pixel spacing given for the original is multiplied by it.
    downscale: int = 1


def megabytes(size: int, *, round_up: bool = False) -> str:
    """``size`` bytes in MB (10^6 bytes) to 0.01 MB, trailing zeros dropped. A refused file's size
    is rounded up and a limit down, so that a file one byte over the limit never reads as equal to it."""
    hundredths = -(-size // 10_000) if round_up else size // 10_000
    return f"{hundredths / 100:.2f}".rstrip("0").rstrip(".")


def megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f}".rstrip("0").rstrip(".")


def _reduced_decoding_scale(width: int, height: int, max_decode_pixels: int) -> int | None:
    for scale in JPEG_DECODER_SCALES:
        if math.ceil(width / scale) * math.ceil(height / scale) <= max_decode_pixels:
            return scale
    return None


def _to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """Pixels converted from an embedded profile to sRGB, so that dropping the profile keeps colours."""
    if not icc_profile or image.mode not in ("RGB", "RGBA", "L"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        rgb = image.convert("RGB")
        return ImageCms.profileToProfile(rgb, source, SRGB, outputMode="RGB") or rgb
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image  # an unreadable profile: keep the pixels as they are


def jpeg_damage(data: bytes) -> str | None:
    """libjpeg's warning when a JPEG's compressed data does not decode as written, else None.

    Desynchronised Huffman data shows as "premature end of data segment" (the decoder ran out
    before the last block), "N extraneous bytes before marker" (it finished with data left over)
    or a bad code. None of the 11,013 shared dermoscopy JPEGs warns; 74 of 80 JPEGs with 30
    flipped bits do (bench/plausibility.py; the rest are refused by ml.plausibility's pixel checks).
    """
    import simplejpeg  # noqa: PLC0415 -- imports numpy: only when an upload is cleaned, not at web start

    try:
        # Grey output (CMYK where there is no luminance): the whole scan is read either way.
        colorspace = "CMYK" if simplejpeg.decode_jpeg_header(data)[2] in ("CMYK", "YCCK") else "GRAY"
    except ValueError:
        return None  # a header libjpeg-turbo cannot read but Pillow did: a gap in it, not evidence of damage

    def decode(strict: bool) -> None:
        simplejpeg.decode_jpeg(data, colorspace=colorspace, min_height=1, min_width=1, strict=strict)

    try:
        decode(strict=True)
        return None
    except ValueError as exc:
        message = str(exc)
    if any(harmless in message for harmless in HARMLESS_JPEG_WARNINGS):
        return None
    try:
        decode(strict=False)
    except ValueError:
        return None  # fatal for libjpeg-turbo although Pillow decoded it: a gap in it, not evidence of damage
    return message


def _rebuilt_from_pixels(image: Image.Image) -> Image.Image:
    """A new image holding only the pixel values: no info dict, no profile, no text, no EXIF."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    fresh = Image.new("RGB", rgb.size)
    fresh.paste(rgb)
    return fresh


def _upright(image: Image.Image) -> Image.Image:
    """EXIF orientation applied (a copy only when the image needs turning)."""
    if image.getexif().get(ExifTags.Base.Orientation, 1) in (1, None):
        return image
    return ImageOps.exif_transpose(image)


def clean_image_bytes(data: bytes, *, max_bytes: int | None = None, max_pixels: int | None = None,
                      max_decode_pixels: int | None = None) -> CleanImage:
    """Validate and re-encode an upload; raise ValidationError with a message a clinician can act on."""
    max_bytes = max_bytes or settings.UPLOAD_MAX_BYTES
    max_pixels = max_pixels or settings.UPLOAD_MAX_PIXELS
    max_decode_pixels = max_decode_pixels or settings.UPLOAD_MAX_DECODE_PIXELS
    if not data:
        raise ValidationError("The file is empty.", code="empty")
    if len(data) > max_bytes:
        raise ValidationError(f"The file is {megabytes(len(data), round_up=True)} MB; the limit is "
                              f"{megabytes(max_bytes)} MB.",
                              code="too_large")
    downscale = 1
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
                        f"The image is {width}×{height} pixels; the limit is {megapixels(max_pixels)} megapixels.",
                        code="too_many_pixels")
                if width * height > max_decode_pixels:
                    scale = _reduced_decoding_scale(width, height, max_decode_pixels) if fmt == "JPEG" else None
                    if scale is not None:
                        # draft() picks the largest scale whose output is at least the size asked for, so
                        # ask for the floor: an odd side asked as its ceiling got the next smaller scale.
                        probe.draft(probe.mode, (max(1, width // scale), max(1, height // scale)))
                    if scale is None or probe.size[0] * probe.size[1] > max_decode_pixels:
                        raise ValidationError(
                            f"The image is {width}×{height} pixels; {fmt} images above "
                            f"{megapixels(max_decode_pixels)} megapixels are not processed (JPEG images up to "
                            f"{megapixels(max_pixels)} megapixels are reduced). Export it smaller or as JPEG.",
                            code="too_many_pixels")
                    downscale = scale
                probe.load()  # decode: truncated or corrupt files fail here
                damage = jpeg_damage(data) if fmt == "JPEG" else None
                if damage:
                    raise ValidationError(f"The image is damaged or incomplete (the JPEG decoder reports: {damage}); "
                                          "it would decode into broken blocks. Upload the original file again.",
                                          code="corrupt")
                icc_profile = probe.info.get("icc_profile")
                image = _rebuilt_from_pixels(_to_srgb(_upright(probe), icc_profile))
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
    return CleanImage(out.getvalue(), extension, hashlib.sha256(data).hexdigest(), image.width, image.height,
                      downscale)


def encode_png(array) -> bytes:
    """An RGB or L numpy array as PNG bytes (analysis outputs: masks, overlays, heat maps).

    zlib level 1: for a 600×450 overlay about a quarter of the default level's time (the largest
    part of an analysis's storage write) for files about a quarter larger, still lossless."""
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def decode_rgb(data: bytes):
    """Stored image bytes to an RGB numpy array (the worker side)."""
    import numpy as np  # noqa: PLC0415 -- worker side only: the web process that validates uploads loads no numpy

    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return np.asarray(img.convert("RGB"))


def thumbnail_png(data: bytes, size: int = 256) -> bytes:
    """A PNG of the image scaled to fit size × size. zlib level 1, as for the analysis outputs: on
    the development set's 256-pixel images 6 ms against 23 ms at the default level, for files about
    a sixth larger (a thumbnail is made for every capture, on the analysis workers)."""
    with Image.open(io.BytesIO(data)) as img:
        if img.format == "JPEG":
            # Not yet decoded, so Image.thumbnail decodes at a reduced scale (at least twice the
            # thumbnail's size) and keeps the size it computes from the original's.
            img.thumbnail((size, size))
        img = img.convert("RGB")
        img.thumbnail((size, size))
        out = io.BytesIO()
        img.save(out, format="PNG", compress_level=1)
        return out.getvalue()


def reduced_rgb(data: bytes, max_side: int = 1024):
    """A small RGB numpy copy of stored image bytes for checks that need no full resolution
    (the image-quality check works at 256 pixels); JPEG decodes at reduced scale (draft mode).

    Not thumbnail_png's decode on purpose: this runs in the upload request, so it drafts the JPEG
    decoder so that both sides stay at least max_side (half scale for a 4,000 × 3,000 photo, which
    the thumbnail's twice-the-size draft would decode whole), where a thumbnail wants a sharper
    picture and the size Image.thumbnail gives the whole image."""
    import numpy as np  # noqa: PLC0415 -- only when a capture is stored: the web process starts without numpy

    with Image.open(io.BytesIO(data)) as img:
        img.draft("RGB", (max_side, max_side))
        img = img.convert("RGB")
        img.thumbnail((max_side, max_side))
        return np.asarray(img)
