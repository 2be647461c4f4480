from __future__ import annotations

import io

import factory
import numpy as np
from django.contrib.auth import get_user_model
from django.utils import timezone
from PIL import Image

from clinic.models import Clinic, Membership, Patient
from lesions.models import Lesion


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"clinician{n}")
    password = factory.django.Password("correct-horse-battery")


class ClinicFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Clinic

    name = factory.Sequence(lambda n: f"Clinic {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    clinic = factory.SubFactory(ClinicFactory)


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    clinic = factory.SubFactory(ClinicFactory)
    identifier = factory.Sequence(lambda n: f"MRN{n:06d}")
    name = factory.Faker("name")


class LesionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Lesion

    patient = factory.SubFactory(PatientFactory)
    label = factory.Sequence(lambda n: f"Lesion {n}")
    body_site = "posterior torso"


def lesion_image(size: tuple[int, int] = (160, 120), radius: int = 35, fmt: str = "JPEG",
                 exif: bytes | None = None) -> bytes:
    """A synthetic dermoscopy-like picture: a dark brown disc on skin-coloured background, with
    the shading and sensor noise of a real camera (a perfectly flat frame is refused as not
    analysable, see ml.plausibility)."""
    width, height = size
    yy, xx = np.mgrid[:height, :width]
    shade = 1.0 - 0.35 * (((yy - height / 2) / height) ** 2 + ((xx - width / 2) / width) ** 2) * 4
    img = np.stack([222 * shade, 184 * shade, 160 * shade], axis=-1)
    inside = (yy - height / 2) ** 2 + (xx - width / 2) ** 2 < radius**2
    img[inside] = (95, 55, 35)
    img = np.clip(img + np.random.default_rng(width * 7 + height).normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    kwargs = {"exif": exif} if exif else {}
    Image.fromarray(img).save(out, format=fmt, **kwargs)
    return out.getvalue()


def textured_lesion_image(size: tuple[int, int] = (320, 240), radius: int = 60, seed: int = 0,
                          fmt: str = "JPEG") -> bytes:
    """Closer to a real dermoscopy picture than lesion_image: skin with shading and sensor
    noise, an irregular brown lesion with darker network. Passes the plausibility checks."""
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[:height, :width]
    shade = 1.0 - 0.25 * (((yy - height / 2) / height) ** 2 + ((xx - width / 2) / width) ** 2)
    img = np.stack([222 * shade, 184 * shade, 160 * shade], axis=-1)
    angle = np.arctan2(yy - height / 2, xx - width / 2)
    wobble = radius * (1 + 0.12 * np.sin(3 * angle + seed) + 0.06 * np.sin(7 * angle))
    inside = np.hypot(yy - height / 2, xx - width / 2) < wobble
    lesion = np.stack([95 + 25 * np.sin(xx / 5.0) * np.cos(yy / 6.0), 55 + 15 * np.sin(xx / 5.0),
                       35 + 10 * np.cos(yy / 6.0)], axis=-1)
    img[inside] = lesion[inside]
    img = np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(img).save(out, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return out.getvalue()


def now():
    return timezone.now()


def analysed(lesion: Lesion, *, probability: float | None = 0.5, status: str = "done", error: str = ""):
    """A capture of ``lesion`` through the real upload service, its analysis set to ``status`` with
    this score (threshold 0.3), as the worker would have finished it."""
    from lesions import services
    from lesions.models import Analysis

    capture = services.capture_create(request=None, user=None, lesion=lesion, data=lesion_image())
    analysis = capture.analyses.get()
    Analysis.objects.filter(pk=analysis.pk).update(status=status, probability=probability, threshold=0.3,
                                                   error=error, finished_at=timezone.now())
    analysis.refresh_from_db()
    return analysis
