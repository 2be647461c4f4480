"""Damaged JPEG data is refused at upload, although Pillow decodes it without a word.

Synthetic files only: a clean picture from tests.factories, damaged in the ways a corrupt
transfer or a cut-off write damages a JPEG's scan (the shared-data measurement with bit-flipped
dermoscopy JPEGs is tests/ml/test_plausibility.py's)."""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import ValidationError
from PIL import Image

from lesions.images import clean_image_bytes, jpeg_damage
from tests.factories import textured_lesion_image

CLEAN = textured_lesion_image(size=(320, 240))


def end_marker(data: bytes) -> int:
    return data.rindex(b"\xff\xd9")


def with_extraneous_bytes(data: bytes) -> bytes:
    """Bytes the decoder never needs before the end marker: what a desynchronised Huffman
    stream looks like to libjpeg when it finishes the last block early."""
    return data[:end_marker(data)] + bytes(range(1, 40)) + data[end_marker(data):]


def with_scan_cut_short(data: bytes) -> bytes:
    """The last 400 bytes of the scan missing but the end marker present: the decoder runs out
    before the last block (or a desynchronised stream needs more blocks than the data holds)."""
    return data[:end_marker(data) - 400] + data[end_marker(data):]


def pillow_decodes(data: bytes) -> bool:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.size == (320, 240)


@pytest.mark.parametrize("damage,signature", [
    (with_extraneous_bytes, "extraneous bytes before marker 0xd9"),
    (with_scan_cut_short, "premature end of data segment"),
])
def test_damaged_scan_data_is_refused_at_upload(damage, signature):
    damaged = damage(CLEAN)
    assert pillow_decodes(damaged)  # why the strict decode is needed: Pillow keeps libjpeg's warnings to itself
    assert signature in jpeg_damage(damaged)
    with pytest.raises(ValidationError) as refused:
        clean_image_bytes(damaged)
    assert refused.value.code == "corrupt"
    assert "damaged or incomplete" in refused.value.messages[0] and signature in refused.value.messages[0]


def test_the_refusal_names_the_damage_and_says_what_to_do():
    with pytest.raises(ValidationError) as refused:
        clean_image_bytes(with_scan_cut_short(CLEAN))
    assert refused.value.messages == [
        "The image is damaged or incomplete (the JPEG decoder reports: Corrupt JPEG data: premature end of data "
        "segment); it would decode into broken blocks. Upload the original file again."]


def cmyk_jpeg(colour_transform: str) -> bytes:
    """CMYK as Pillow writes it (Adobe marker, no transform) or as libjpeg-turbo writes it (YCCK)."""
    import numpy as np
    import simplejpeg

    cmyk = Image.open(io.BytesIO(CLEAN)).convert("CMYK")
    if colour_transform == "YCCK":
        return simplejpeg.encode_jpeg(np.asarray(cmyk), colorspace="CMYK", quality=92)
    out = io.BytesIO()
    cmyk.save(out, format="JPEG", quality=92)
    return out.getvalue()


@pytest.mark.parametrize("colour_transform", ["CMYK", "YCCK"])
@pytest.mark.parametrize("damage,signature", [
    (with_extraneous_bytes, "extraneous bytes before marker 0xd9"),
    (with_scan_cut_short, "premature end of data segment"),
])
def test_damaged_cmyk_scan_data_is_refused_too(colour_transform, damage, signature):
    import simplejpeg

    intact = cmyk_jpeg(colour_transform)
    assert simplejpeg.decode_jpeg_header(intact)[2] == colour_transform
    assert jpeg_damage(intact) is None and clean_image_bytes(intact).width == 320
    assert signature in jpeg_damage(damage(intact))
    with pytest.raises(ValidationError) as refused:
        clean_image_bytes(damage(intact))
    assert refused.value.code == "corrupt" and signature in refused.value.messages[0]


def reencoded(mode: str, **options) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(CLEAN)).convert(mode).save(out, format="JPEG", **options)
    return out.getvalue()


@pytest.mark.parametrize("name,data", [
    ("baseline 4:2:0", CLEAN),
    ("progressive", reencoded("RGB", progressive=True)),
    ("4:4:4", reencoded("RGB", subsampling=0, quality=95)),
    ("greyscale", reencoded("L")),
    ("CMYK", reencoded("CMYK")),
])
def test_intact_jpegs_pass(name, data):
    assert jpeg_damage(data) is None, name
    assert clean_image_bytes(data).width == 320


def test_a_header_only_warning_is_not_damage():
    # libjpeg warns about a JFIF version it does not know; the pixels decode as written.
    data = bytearray(CLEAN)
    version = data.index(b"JFIF\x00") + 5
    data[version] = 2
    assert jpeg_damage(bytes(data)) is None
    assert clean_image_bytes(bytes(data)).width == 320


@pytest.mark.django_db
def test_a_damaged_upload_stores_nothing(client_logged_in, lesion, private_media):
    from lesions.models import Capture
    from tests.lesions.test_uploads import stored_files, upload

    before = set(stored_files(private_media))
    response = upload(client_logged_in, lesion, "cut.jpg", with_scan_cut_short(CLEAN))
    assert response.status_code == 400
    assert "premature end of data segment" in response.content.decode()
    assert Capture.objects.count() == 0 and set(stored_files(private_media)) == before
