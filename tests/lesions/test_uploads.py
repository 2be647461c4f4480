"""Uploads are checked by content; bad input gets a clear message and nothing is half-saved."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from lesions.images import decode_rgb, encode_png, megapixels, reduced_rgb, thumbnail_png
from lesions.models import Analysis, Capture
from tests.factories import lesion_image

pytestmark = [pytest.mark.security, pytest.mark.django_db]


def upload(client, lesion, name: str, data: bytes, **extra):
    return client.post(reverse("lesion_upload", args=[lesion.pk]),
                       {"images": [SimpleUploadedFile(name, data, content_type="image/jpeg")],
                        "modality": "dermoscopic", **extra})


def stored_files(media_root: str) -> list[str]:
    import os

    return [os.path.join(d, f) for d, _, files in os.walk(media_root) for f in files]


@pytest.mark.parametrize("name,data,message", [
    ("notes.jpg", b"this is a text file, not a picture", "not an image"),
    ("truncated.jpg", lesion_image((400, 300))[:900], "damaged or incomplete"),
    ("empty.jpg", b"", "empty"),
    ("anim.gif", lesion_image(fmt="GIF"), "GIF files are not accepted"),
])
def test_bad_files_get_a_clear_message_and_nothing_is_saved(client_logged_in, lesion, private_media, name, data,
                                                              message):
    before = set(stored_files(private_media))
    response = upload(client_logged_in, lesion, name, data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert Capture.objects.count() == 0 and Analysis.objects.count() == 0
    assert set(stored_files(private_media)) == before


def test_image_over_byte_limit_is_refused(client_logged_in, lesion, settings):
    import numpy as np

    settings.UPLOAD_MAX_BYTES = 100_000
    noisy = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(noisy, "PNG")
    assert len(noisy.getvalue()) > 100_000
    response = upload(client_logged_in, lesion, "big.png", noisy.getvalue())
    assert response.status_code == 400
    assert "the limit is" in response.content.decode()
    assert Capture.objects.count() == 0


def test_decompression_bomb_is_refused_before_decoding(client_logged_in, lesion, settings):
    settings.UPLOAD_MAX_PIXELS = 1_000_000
    out = io.BytesIO()
    Image.new("L", (4000, 4000)).save(out, format="PNG")  # 16 Mpx, compresses to a few KB
    response = upload(client_logged_in, lesion, "bomb.png", out.getvalue())
    assert response.status_code == 400
    assert "megapixels" in response.content.decode()
    assert Capture.objects.count() == 0


def test_several_files_at_once_save_the_good_and_report_the_bad(client_logged_in, lesion):
    response = client_logged_in.post(reverse("lesion_upload", args=[lesion.pk]), {
        "images": [SimpleUploadedFile("a.jpg", lesion_image()), SimpleUploadedFile("b.png", lesion_image(fmt="PNG")),
                   SimpleUploadedFile("c.jpg", b"junk")],
        "modality": "clinical", "field_of_view_mm": "16"})
    assert response.status_code == 400
    assert "c.jpg" in response.content.decode()
    captures = list(Capture.objects.order_by("id"))
    assert len(captures) == 2
    assert captures[0].mm_per_pixel == pytest.approx(16 / 160)
    assert all(c.analyses.get().status == Analysis.Status.QUEUED for c in captures)


def test_exif_is_applied_then_stripped_and_original_hash_kept(client_logged_in, lesion):
    import hashlib

    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    exif.get_ifd(0x8825)[2] = (51.0, 30.0, 0.0)  # GPS latitude
    exif.get_ifd(0x8825)[1] = "N"
    exif[0xA431] = "SERIAL-12345"  # body serial number
    exif[0x010F] = "AcmeScope"
    data = lesion_image((160, 120), exif=exif.tobytes())
    with Image.open(io.BytesIO(data)) as original:
        assert original.getexif().get_ifd(0x8825), "the test image must carry GPS data"
    assert b"SERIAL-12345" in data
    response = upload(client_logged_in, lesion, "gps.jpg", data)
    assert response.status_code == 302
    capture = Capture.objects.get()
    assert capture.sha256 == hashlib.sha256(data).hexdigest()
    with default_storage.open(capture.image.name) as handle:
        stored = handle.read()
    assert b"SERIAL-12345" not in stored and b"AcmeScope" not in stored
    with Image.open(io.BytesIO(stored)) as img:
        assert not img.getexif()
        assert img.size == (120, 160)  # orientation applied before stripping
    assert (capture.width, capture.height) == (120, 160)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(
    st.binary(max_size=3000),
    st.builds(lambda cut, flip: _mutate(lesion_image(), cut, flip),
              st.integers(min_value=0, max_value=2000), st.integers(min_value=0, max_value=2000)),
))
def test_random_and_mutated_files_never_500_nor_half_save(client_logged_in, lesion, data):
    before = Capture.objects.count()
    response = upload(client_logged_in, lesion, "fuzz.jpg", data)
    assert response.status_code in (302, 400)
    after = Capture.objects.count()
    if response.status_code == 302:
        assert after == before + 1
        assert Capture.objects.latest("id").analyses.count() == 1
    else:
        assert after == before


def _mutate(data: bytes, cut: int, flip: int) -> bytes:
    mutable = bytearray(data[: max(1, len(data) - cut)])
    if mutable:
        mutable[flip % len(mutable)] ^= 0xFF
    return bytes(mutable)


# The image helpers' contracts: the limit's wording, and the worker-side encodings of analysis outputs
# (lossless masks and overlays) and list thumbnails (bounded, aspect kept).
@pytest.mark.parametrize("pixels,shown", [
    (40_000_000, "40"), (12_500_000, "12.5"), (100_000, "0.1"), (1_000_000, "1"), (10_000_000, "10"),
    (100_000_000, "100"),
    (1_050_000, "1.1"),  # to the nearest 0.1 megapixel (10^6 pixels)
    (1_040_000, "1"),
])
def test_a_pixel_limit_is_worded_in_megapixels_without_trailing_zeros(pixels, shown):
    assert megapixels(pixels) == shown


def test_analysis_outputs_are_stored_losslessly_as_png():
    rng = np.random.default_rng(1)
    overlay = rng.integers(0, 256, (45, 60, 3), dtype=np.uint8)
    png = encode_png(overlay)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert np.array_equal(decode_rgb(png), overlay)
    mask = (rng.random((45, 60)) > 0.5).astype(np.uint8) * 255
    decoded = decode_rgb(encode_png(mask))
    assert decoded.shape == (45, 60, 3) and all(np.array_equal(decoded[..., c], mask) for c in range(3))


def test_decode_rgb_gives_rgb_pixels_of_a_stored_jpeg():
    decoded = decode_rgb(lesion_image((160, 120)))
    assert decoded.shape == (120, 160, 3) and decoded.dtype == np.uint8
    assert tuple(decoded[60, 80]) == pytest.approx((95, 55, 35), abs=20)  # the lesion's brown centre


@pytest.mark.parametrize("size,original,expected", [
    (256, (640, 480), (256, 192)), (100, (640, 480), (100, 75)), (256, (120, 300), (102, 256)),
    (256, (200, 150), (200, 150)),  # never enlarged
])
def test_thumbnails_fit_the_box_keep_the_aspect_and_are_png(size, original, expected):
    png = thumbnail_png(lesion_image(original), size)
    with Image.open(io.BytesIO(png)) as thumb:
        assert (thumb.format, thumb.mode, thumb.size) == ("PNG", "RGB", expected)


@pytest.mark.parametrize("original", [(1033, 2581), (3788, 1531), (4000, 3000)])
def test_a_large_jpeg_decoded_at_a_reduced_scale_keeps_the_thumbnail_size_of_the_whole_image(original):
    """Where rounding the reduced decode's size would move the aspect, the size is still the one
    Image.thumbnail gives on the fully decoded picture (102 × 256 for 1033 × 2581, not 103 × 256)."""
    data = lesion_image(original)
    with Image.open(io.BytesIO(data)) as whole:
        whole = whole.convert("RGB")
        whole.thumbnail((256, 256))
    with Image.open(io.BytesIO(thumbnail_png(data))) as thumb:
        assert thumb.size == whole.size
        # The same picture: the reduced decode only changes how it is sampled.
        difference = np.abs(np.asarray(thumb, np.int16) - np.asarray(whole, np.int16))
        assert difference.mean() < 3


def test_the_default_thumbnail_is_256_pixels():
    with Image.open(io.BytesIO(thumbnail_png(lesion_image((640, 480))))) as thumb:
        assert thumb.size == (256, 192)


def test_reduced_copy_fits_the_side_and_keeps_the_aspect():
    assert reduced_rgb(lesion_image((640, 480)), 160).shape == (120, 160, 3)
    assert reduced_rgb(lesion_image((160, 120))).shape == (120, 160, 3)


def test_reduced_copy_defaults_to_1024_pixels_on_the_long_side():
    assert reduced_rgb(lesion_image((2048, 1536))).shape == (768, 1024, 3)


def test_reduced_copy_of_a_large_jpeg_is_decoded_at_a_reduced_scale(monkeypatch):
    # The quality check runs on every stored capture: a 2048-pixel JPEG must not cost a full-size decode.
    from PIL import ImageFile

    decoded: list[tuple[int, int]] = []
    original = ImageFile.ImageFile.load

    def load(self):
        decoded.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    assert reduced_rgb(lesion_image((2048, 1536)), 256).shape == (192, 256, 3)
    assert decoded and max(w for w, _ in decoded) <= 2 * 256  # libjpeg's 1/4 scale, then resampled


def greyscale(fmt: str, size: tuple[int, int] = (640, 480)) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(lesion_image(size))).convert("L").save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_reduced_copy_of_a_greyscale_image_is_rgb(fmt):
    reduced = reduced_rgb(greyscale(fmt), 160)
    assert reduced.shape == (120, 160, 3)
    assert np.array_equal(reduced[..., 0], reduced[..., 1]) and np.array_equal(reduced[..., 1], reduced[..., 2])


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_the_thumbnail_of_a_greyscale_image_is_rgb(fmt):
    with Image.open(io.BytesIO(thumbnail_png(greyscale(fmt)))) as thumb:
        assert (thumb.format, thumb.mode, thumb.size) == ("PNG", "RGB", (256, 192))


def test_analysis_outputs_are_written_at_zlibs_fastest_level():
    # Level 1 (see encode_png): the zlib header of the first IDAT chunk declares it (FLEVEL 0, "fastest");
    # Pillow's default level 6 would declare FLEVEL 2 and take about four times as long to write.
    png = encode_png(np.random.default_rng(2).integers(0, 256, (45, 60, 3), dtype=np.uint8))
    idat = png.index(b"IDAT") + 4
    cmf, flg = png[idat], png[idat + 1]
    assert cmf & 0x0F == 8 and (cmf << 8 | flg) % 31 == 0  # a zlib deflate stream
    assert flg >> 6 == 0
