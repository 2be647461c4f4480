"""Stored images carry no metadata of any kind: each kind is uploaded and looked for in storage."""

from __future__ import annotations

import io
import struct

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image, ImageCms, PngImagePlugin

from lesions.models import Capture

pytestmark = [pytest.mark.security, pytest.mark.django_db]

SECRET = b"SECRET-ADA-EXAMPLE"
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description>' + SECRET + b"</rdf:Description></x:xmpmeta>"


def picture() -> Image.Image:
    img = Image.new("RGB", (96, 64), (222, 184, 160))
    img.paste((95, 55, 35), (30, 20, 66, 44))
    return img


def adobe_like_profile() -> bytes:
    """A non-sRGB profile (a LAB-based one Pillow can build) carrying the secret in its description."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    data = bytearray(profile.tobytes())
    return bytes(data) + SECRET  # trailing bytes are kept by readers that copy the profile


def jpeg(**kwargs) -> bytes:
    out = io.BytesIO()
    picture().save(out, format="JPEG", quality=95, **kwargs)
    return out.getvalue()


def png(**kwargs) -> bytes:
    out = io.BytesIO()
    picture().save(out, format="PNG", **kwargs)
    return out.getvalue()


def png_text() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Patient", SECRET.decode())
    info.add_text("Compressed", SECRET.decode(), zip=True)
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    return png(pnginfo=info)


def png_exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = SECRET.decode()
    return png(exif=exif.tobytes())


def carries_secret(data: bytes) -> bool:
    """In the bytes, or inside a compressed chunk (PNG's iCCP and zTXt are zlib-compressed)."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        values = [*img.info.values(), *getattr(img, "text", {}).values()]
    return SECRET in data or any(SECRET in (v if isinstance(v, bytes) else str(v).encode()) for v in values)


def jpeg_segments(data: bytes) -> list[int]:
    """The marker of every segment before the image data (SOS)."""
    markers, i = [], 2
    while i < len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xDA:
            break
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        markers.append(marker)
        i += 2 + length
    return markers


def png_chunks(data: bytes) -> list[bytes]:
    chunks, i = [], 8
    while i < len(data):
        length = struct.unpack(">I", data[i:i + 4])[0]
        chunks.append(data[i + 4:i + 8])
        i += 12 + length
    return chunks


KINDS = {
    "jpeg-comment": ("a.jpg", lambda: jpeg(comment=SECRET)),
    "jpeg-xmp": ("b.jpg", lambda: jpeg(xmp=XMP)),
    "jpeg-icc": ("c.jpg", lambda: jpeg(icc_profile=adobe_like_profile())),
    "jpeg-exif": ("d.jpg", lambda: jpeg(exif=_exif_with_secret())),
    "png-text": ("e.png", png_text),
    "png-icc": ("f.png", lambda: png(icc_profile=adobe_like_profile())),
    "png-exif": ("g.png", png_exif),
}


def _exif_with_secret() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = SECRET.decode()
    return exif.tobytes()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_of_metadata_is_gone_from_storage(client_logged_in, lesion, kind):
    name, make = KINDS[kind]
    data = make()
    assert carries_secret(data), "the test file must carry the metadata"
    response = client_logged_in.post(reverse("lesion_upload", args=[lesion.pk]),
                                     {"images": [SimpleUploadedFile(name, data)], "modality": "dermoscopic"})
    assert response.status_code == 302
    capture = Capture.objects.get()
    with default_storage.open(capture.image.name) as handle:
        stored = handle.read()
    assert SECRET not in stored and not carries_secret(stored)
    with Image.open(io.BytesIO(stored)) as img:
        assert not {"comment", "xmp", "icc_profile", "exif", "Patient", "Compressed", "XML:com.adobe.xmp"} & set(img.info)
        assert img.size == (96, 64)
    if name.endswith(".jpg"):
        # Only JFIF (APP0), quantisation/Huffman tables and frame headers: no APPn (EXIF, XMP, ICC) nor COM.
        markers = jpeg_segments(stored)
        assert not [m for m in markers if 0xE1 <= m <= 0xEF or m == 0xFE], [hex(m) for m in markers]
    else:
        assert set(png_chunks(stored)) <= {b"IHDR", b"IDAT", b"IEND"}


def test_colours_are_kept_when_the_profile_is_applied_and_dropped(client_logged_in, lesion):
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    data = jpeg(icc_profile=srgb.tobytes())
    client_logged_in.post(reverse("lesion_upload", args=[lesion.pk]),
                          {"images": [SimpleUploadedFile("p.jpg", data)], "modality": "dermoscopic"})
    capture = Capture.objects.get()
    with default_storage.open(capture.image.name) as handle, Image.open(handle) as img:
        r, g, b = img.convert("RGB").getpixel((5, 5))
    assert abs(r - 222) <= 3 and abs(g - 184) <= 3 and abs(b - 160) <= 3


def wide_gamut_profile() -> bytes:
    """A real RGB profile that is not sRGB: Pillow's sRGB profile with the red and blue primaries
    swapped and a 1.2 tone curve (ICC.1 tag table at byte 128; `para` curve gamma at +12)."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    count = struct.unpack(">I", data[128:132])[0]
    tags = {bytes(data[132 + 12 * i:136 + 12 * i]): 132 + 12 * i for i in range(count)}
    red, blue = tags[b"rXYZ"], tags[b"bXYZ"]
    data[red + 4:red + 12], data[blue + 4:blue + 12] = data[blue + 4:blue + 12], data[red + 4:red + 12]
    for trc in (b"rTRC", b"gTRC", b"bTRC"):
        curve = struct.unpack(">I", data[tags[trc] + 4:tags[trc] + 8])[0]
        assert data[curve:curve + 4] == b"para"
        data[curve + 12:curve + 16] = struct.pack(">i", int(1.2 * 65536))
    return bytes(data)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_pixels_in_another_colour_space_are_converted_to_srgb_before_the_profile_goes(mode):
    from lesions.images import clean_image_bytes

    profile = wide_gamut_profile()
    original = picture().convert(mode)
    out = io.BytesIO()
    original.save(out, format="PNG", icc_profile=profile)
    stored = clean_image_bytes(out.getvalue())
    expected = ImageCms.profileToProfile(original.convert("RGB"), ImageCms.ImageCmsProfile(io.BytesIO(profile)),
                                         ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")), outputMode="RGB")
    with Image.open(io.BytesIO(stored.content)) as img:
        assert (img.format, img.mode, "icc_profile" in img.info) == ("PNG", "RGB", False)
        assert img.tobytes() == expected.tobytes()
        assert img.tobytes() != original.convert("RGB").tobytes()  # the conversion changed colours


def test_an_unreadable_profile_keeps_the_pixels_as_they_are():
    from lesions.images import clean_image_bytes

    out = io.BytesIO()
    picture().save(out, format="PNG", icc_profile=b"not a colour profile")
    with Image.open(io.BytesIO(clean_image_bytes(out.getvalue()).content)) as img:
        assert img.tobytes() == picture().tobytes()


def test_a_photo_whose_exif_is_cut_short_is_stored_upright_without_it():
    # Phones and editing apps write EXIF whose last tag points past its end: Pillow skips that tag
    # with a UserWarning, which is no reason to refuse the photo (only the decompression-bomb
    # warning is turned into an error). The orientation tag before it is still applied.
    from lesions.images import clean_image_bytes

    exif = Image.Exif()
    exif[0x010F] = "AcmeScope " * 20  # stored after the tag table
    exif[0x0112] = 6  # rotate 90° clockwise to display
    out = io.BytesIO()
    picture().save(out, format="JPEG", quality=95, exif=exif.tobytes()[:-50])
    with pytest.warns(UserWarning, match="Skipping tag 271"):
        clean = clean_image_bytes(out.getvalue())
    assert (clean.width, clean.height) == (64, 96)
    with Image.open(io.BytesIO(clean.content)) as img:
        assert not img.getexif() and b"AcmeScope" not in clean.content
