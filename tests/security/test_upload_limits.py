"""Upload limits hold exactly at their value (limit - 1, limit, limit + 1) and refuse early."""

from __future__ import annotations

import contextlib
import io
import math
import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import RequestFactory
from django.urls import reverse
from PIL import Image, ImageFile

from lesions.models import Capture
from lesions.uploads import UploadLimitsMiddleware
from tests.factories import lesion_image

pytestmark = [pytest.mark.security, pytest.mark.django_db]


def upload(client, lesion, files: list[tuple[str, bytes]], **extra):
    return client.post(reverse("lesion_upload", args=[lesion.pk]),
                       {"images": [SimpleUploadedFile(n, d, content_type="image/jpeg") for n, d in files],
                        "modality": "dermoscopic", **extra})


@pytest.fixture
def service_calls(monkeypatch):
    """Every byte string that reached the image check (a refused file must never get there)."""
    from lesions import services

    seen: list[int] = []
    original = services.clean_image_bytes

    def spy(data, **kwargs):
        seen.append(len(data))
        return original(data, **kwargs)

    monkeypatch.setattr(services, "clean_image_bytes", spy)
    return seen


@pytest.mark.parametrize("offset,accepted", [(-1, False), (0, True), (1, True)])
def test_byte_limit_holds_at_the_limit(client_logged_in, lesion, settings, service_calls, offset, accepted):
    data = lesion_image((200, 150))
    settings.UPLOAD_MAX_BYTES = len(data) + offset
    response = upload(client_logged_in, lesion, [("scan.jpg", data)])
    assert (response.status_code == 302) is accepted
    assert Capture.objects.count() == (1 if accepted else 0)
    if not accepted:
        content = response.content.decode()
        assert "scan.jpg" in content and "the limit is" in content
        assert service_calls == []  # refused while streaming, never read into memory as a whole


def test_byte_limit_in_the_service_holds_at_the_limit():
    from django.core.exceptions import ValidationError

    from lesions.images import clean_image_bytes

    data = lesion_image((200, 150))
    clean_image_bytes(data, max_bytes=len(data))
    clean_image_bytes(data, max_bytes=len(data) + 1)
    with pytest.raises(ValidationError, match="the limit is"):
        clean_image_bytes(data, max_bytes=len(data) - 1)


@pytest.mark.parametrize("count,accepted", [(1, True), (2, True), (3, False)])
def test_files_per_request_cap(client_logged_in, lesion, settings, count, accepted):
    settings.UPLOAD_MAX_FILES = 2
    response = upload(client_logged_in, lesion, [(f"{i}.jpg", lesion_image()) for i in range(count)])
    assert (response.status_code == 302) is accepted
    assert Capture.objects.count() == (count if accepted else 0)
    if not accepted:
        assert "More than 2 images" in response.content.decode()


@pytest.mark.parametrize("offset,refused", [(-1, False), (0, False), (1, True)])
def test_declared_request_size_is_refused_before_reading(settings, offset, refused):
    settings.UPLOAD_MAX_REQUEST_BYTES = 10_000
    reached = []
    middleware = UploadLimitsMiddleware(lambda request: reached.append(request) or "view")
    request = RequestFactory().post("/lesions/1/captures/", data=b"", content_type="multipart/form-data; boundary=x",
                                    CONTENT_LENGTH=str(10_000 + offset))
    response = middleware(request)
    if refused:
        assert response.status_code == 413 and not reached
        assert "the limit is 0.01 MB per request" in response.content.decode()
    else:
        assert response == "view"


def test_an_oversized_declared_upload_gets_a_clear_answer(client_logged_in, lesion, settings):
    response = client_logged_in.post(reverse("lesion_upload", args=[lesion.pk]),
                                     {"images": [SimpleUploadedFile("a.jpg", lesion_image())]},
                                     CONTENT_LENGTH=str(settings.UPLOAD_MAX_REQUEST_BYTES + 1))
    assert response.status_code == 413
    assert "per request" in response.content.decode() and Capture.objects.count() == 0
    webcam = client_logged_in.post(reverse("lesion_webcam", args=[lesion.pk]),
                                   {"image": SimpleUploadedFile("w.png", lesion_image(fmt="PNG"))},
                                   CONTENT_LENGTH=str(settings.UPLOAD_MAX_REQUEST_BYTES + 1))
    assert webcam.status_code == 413 and "per request" in webcam.json()["error"]


def test_webcam_still_over_the_byte_limit_is_refused_with_the_limit(client_logged_in, lesion, settings):
    data = lesion_image(fmt="PNG")
    settings.UPLOAD_MAX_BYTES = len(data) - 1
    response = client_logged_in.post(reverse("lesion_webcam", args=[lesion.pk]),
                                     {"image": SimpleUploadedFile("w.png", data), "modality": "clinical"})
    assert response.status_code == 400 and "the limit is" in response.json()["error"]
    assert Capture.objects.count() == 0


@pytest.mark.parametrize("offset,accepted", [(-1, False), (0, True), (1, True)])
def test_pixel_limit_holds_at_the_limit(client_logged_in, lesion, settings, offset, accepted):
    settings.UPLOAD_MAX_PIXELS = 160 * 120 + offset
    response = upload(client_logged_in, lesion, [("p.jpg", lesion_image((160, 120)))])
    assert (response.status_code == 302) is accepted
    if not accepted:
        assert "megapixels" in response.content.decode()


@pytest.fixture
def decoded_sizes(monkeypatch):
    sizes: list[tuple[int, int]] = []
    original = ImageFile.ImageFile.load

    def load(self):
        sizes.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return sizes


@pytest.mark.parametrize("offset,stored_size", [(-1, (80, 60)), (0, (160, 120)), (1, (160, 120))])
def test_jpeg_above_the_decode_budget_is_decoded_at_a_reduced_scale(client_logged_in, lesion, settings,
                                                                    decoded_sizes, offset, stored_size):
    settings.UPLOAD_MAX_DECODE_PIXELS = 160 * 120 + offset
    response = upload(client_logged_in, lesion, [("big.jpg", lesion_image((160, 120)))], mm_per_pixel="0.05")
    assert response.status_code == 302
    capture = Capture.objects.get()
    assert (capture.width, capture.height) == stored_size
    assert max(w * h for w, h in decoded_sizes) <= settings.UPLOAD_MAX_DECODE_PIXELS
    # The clinician's pixel spacing was for the original pixels.
    assert capture.mm_per_pixel == pytest.approx(0.05 * 160 / stored_size[0])


@pytest.mark.parametrize("offset,accepted", [(-1, False), (0, True)])
def test_png_above_the_decode_budget_is_refused_with_the_limit(client_logged_in, lesion, settings, offset, accepted):
    settings.UPLOAD_MAX_DECODE_PIXELS = 160 * 120 + offset
    response = upload(client_logged_in, lesion, [("big.png", lesion_image((160, 120), fmt="PNG"))])
    assert (response.status_code == 302) is accepted
    if not accepted:
        assert "megapixels are not processed" in response.content.decode()


def test_a_6300_pixel_square_photo_is_never_decoded_at_full_size(decoded_sizes, settings):
    from lesions.images import clean_image_bytes

    out = io.BytesIO()
    Image.new("L", (6300, 6300), 128).save(out, format="JPEG", quality=50)
    clean = clean_image_bytes(out.getvalue())
    assert max(w * h for w, h in decoded_sizes) <= settings.UPLOAD_MAX_DECODE_PIXELS < 6300 * 6300
    assert (clean.width, clean.height, clean.downscale) == (3150, 3150, 2)


@pytest.mark.parametrize("budget,stored", [
    (80 * 60, (80, 60, 2)),  # exactly the 1/2-scale size: the smallest reduction that fits
    (80 * 60 - 1, (40, 30, 4)), (40 * 30, (40, 30, 4)), (40 * 30 - 1, (20, 15, 8)), (20 * 15, (20, 15, 8)),
])
def test_a_jpeg_is_decoded_at_the_mildest_reduction_within_the_budget(budget, stored, decoded_sizes):
    from lesions.images import clean_image_bytes

    clean = clean_image_bytes(lesion_image((160, 120)), max_decode_pixels=budget)
    assert (clean.width, clean.height, clean.downscale) == stored
    assert max(w * h for w, h in decoded_sizes) <= budget


@pytest.mark.parametrize("size,scale", [
    # Odd sides: libjpeg's reduced output is the ceiling of each side over the scale, and the budget
    # is exactly the half-scale size, so the photo must be stored at half scale (a 6,301 x 4,201 photo
    # used to be refused: draft() was asked for the ceiling and chose no reduction).
    *[(size, 2) for size in [(321, 40), (161, 121), (160, 121), (6301 // 20, 4201 // 20), (121, 161), (40, 321)]],
    # A side narrower than two blocks: at 1/4 the 5-pixel side is asked of draft() as 1 pixel (5 // 4),
    # and draft() then takes the other side's ratio, 4; asked as 2 it would pick 1/2, above the budget.
    ((5, 400), 4), ((400, 5), 4),
])
def test_a_jpeg_of_any_side_is_reduced_at_the_scale_its_budget_needs(size, scale, decoded_sizes):
    from lesions.images import clean_image_bytes

    width, height = size
    budget = math.ceil(width / scale) * math.ceil(height / scale)
    clean = clean_image_bytes(lesion_image(size), max_decode_pixels=budget)
    assert (clean.width, clean.height, clean.downscale) == (math.ceil(width / scale), math.ceil(height / scale), scale)
    assert max(w * h for w, h in decoded_sizes) <= budget


@pytest.mark.parametrize("size", [(3, 4000), (4000, 3)])
def test_a_jpeg_that_draft_cannot_reduce_enough_is_never_decoded_above_the_budget(size, decoded_sizes):
    # A side narrower than the scale: draft() takes that side's ratio (3 // 1) and picks 1/2, not the 1/4
    # the budget needs. The size check after draft() must catch that; refused or reduced, the picture
    # is never decoded above the budget.
    from django.core.exceptions import ValidationError

    from lesions.images import clean_image_bytes

    with contextlib.suppress(ValidationError):
        clean_image_bytes(lesion_image(size), max_decode_pixels=1_000)
    assert max((w * h for w, h in decoded_sizes), default=0) <= 1_000


def test_a_jpeg_too_large_even_at_one_eighth_is_refused_with_the_limits():
    from django.core.exceptions import ValidationError

    from lesions.images import clean_image_bytes

    with pytest.raises(ValidationError) as refused:
        clean_image_bytes(lesion_image((160, 120)), max_decode_pixels=20 * 15 - 1, max_pixels=1_000_000)
    assert refused.value.messages == [
        "The image is 160×120 pixels; JPEG images above 0 megapixels are not processed (JPEG images up to "
        "1 megapixels are reduced). Export it smaller or as JPEG."]
    assert refused.value.code == "too_many_pixels"


def _refusal(data: bytes, **limits):
    from django.core.exceptions import ValidationError

    from lesions.images import clean_image_bytes

    with pytest.raises(ValidationError) as refused:
        clean_image_bytes(data, **limits)
    return refused.value.messages, refused.value.code


def _gif() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="GIF")
    return out.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose header declares width x height (IHDR rewritten, CRC fixed): what a
    decompression bomb shows before a single pixel is decoded."""
    out = io.BytesIO()
    Image.new("L", (8, 8), 128).save(out, format="PNG")
    data = bytearray(out.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    return bytes(data)


# What the clinician reads for each refusal, and the code the API returns with it.
@pytest.mark.parametrize("data,limits,message,code", [
    (b"", {}, "The file is empty.", "empty"),
    (b"\xff" * 2_500_001, {"max_bytes": 2_000_000}, "The file is 2.51 MB; the limit is 2 MB.", "too_large"),
    (b"\xff" * 1_450_000, {"max_bytes": 1_000_000}, "The file is 1.45 MB; the limit is 1 MB.", "too_large"),
    # MB of 10^6 bytes to 0.01 MB; the size rounded up and the limit down, so one byte over the default
    # 20 MiB limit does not read as "21.0 MB; the limit is 21 MB".
    (b"\xff" * 1_350_000, {"max_bytes": 1_000_000}, "The file is 1.35 MB; the limit is 1 MB.", "too_large"),
    (b"\xff" * (20 * 2**20 + 1), {"max_bytes": 20 * 2**20}, "The file is 20.98 MB; the limit is 20.97 MB.",
     "too_large"),
    (b"\xff" * 2_000_001, {"max_bytes": 2_000_000}, "The file is 2.01 MB; the limit is 2 MB.", "too_large"),
    # The limit is cut to 0.01 MB by integer division: 1,999,999 bytes is 1.99 MB, never "2 MB".
    (b"\xff" * 2_000_000, {"max_bytes": 1_999_999}, "The file is 2 MB; the limit is 1.99 MB.", "too_large"),
    (_gif(), {}, "GIF files are not accepted; upload a JPEG or PNG image.", "format"),
    (lesion_image((160, 120)), {"max_pixels": 19_199},
     "The image is 160×120 pixels; the limit is 0 megapixels.", "too_many_pixels"),
    (lesion_image((160, 120), fmt="PNG"), {"max_decode_pixels": 19_199, "max_pixels": 1_500_000},
     "The image is 160×120 pixels; PNG images above 0 megapixels are not processed (JPEG images up to 1.5 megapixels "
     "are reduced). Export it smaller or as JPEG.", "too_many_pixels"),
    (b"plain text, not a picture", {}, "The file is not an image we can read; upload a JPEG or PNG image.", "format"),
    # Above Pillow's own bomb limits (89.5 Mpx warns, 179 Mpx fails), which it checks on opening, before
    # UPLOAD_MAX_PIXELS is compared: the warning is refused like the error.
    (_png_declaring(10_000, 10_000), {}, "The image has too many pixels to be processed safely.", "too_many_pixels"),
    (_png_declaring(20_000, 20_000), {}, "The image has too many pixels to be processed safely.", "too_many_pixels"),
])
def test_each_refusal_says_why_with_its_code(data, limits, message, code):
    assert _refusal(data, **limits) == ([message], code)


def test_a_damaged_file_is_refused_as_damaged():
    messages, code = _refusal(lesion_image((400, 300))[:900])
    assert code == "corrupt" and messages[0].startswith("The image is damaged or incomplete (")


@pytest.mark.parametrize("fmt,extension", [("JPEG", "jpg"), ("PNG", "png")])
def test_the_stored_copy_keeps_its_format_full_colour_resolution_and_quality(fmt, extension):
    from PIL import JpegImagePlugin

    from lesions.images import clean_image_bytes

    data = lesion_image((160, 120), fmt=fmt)
    clean = clean_image_bytes(data)
    assert (clean.extension, clean.width, clean.height) == (extension, 160, 120)
    with Image.open(io.BytesIO(clean.content)) as stored, Image.open(io.BytesIO(data)) as sent:
        assert (stored.format, stored.mode) == (fmt, "RGB")
        if fmt == "PNG":
            assert stored.tobytes() == sent.convert("RGB").tobytes()  # lossless
        else:
            assert JpegImagePlugin.get_sampling(stored) == 0  # 4:4:4, no chroma subsampling
            reference = io.BytesIO()
            sent.convert("RGB").save(reference, format="JPEG", quality=95, subsampling=0)
            with Image.open(reference) as expected:
                assert stored.quantization == expected.quantization  # quality 95


@pytest.mark.parametrize("mode", ["P", "L", "RGBA", "LA"])
def test_any_pixel_mode_is_stored_as_rgb_with_the_same_colours(mode):
    from lesions.images import clean_image_bytes

    original = Image.open(io.BytesIO(lesion_image((64, 48), fmt="PNG"))).convert(mode)
    out = io.BytesIO()
    original.save(out, format="PNG")
    with Image.open(io.BytesIO(clean_image_bytes(out.getvalue()).content)) as stored:
        assert stored.mode == "RGB"
        assert stored.tobytes() == original.convert("RGB").tobytes()
