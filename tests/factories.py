from __future__ import annotations

import io

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone
from PIL import Image

from clinic.models import Clinic, Membership, Patient
from lesions.models import Lesion
from ml.synthetic import synthetic_lesion


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
    """A synthetic dermoscopy-like picture, encoded: a dark brown disc on skin-coloured background."""
    width, height = size
    img = synthetic_lesion(height, width, radius=radius)
    out = io.BytesIO()
    kwargs = {"exif": exif} if exif else {}
    Image.fromarray(img).save(out, format=fmt, **kwargs)
    return out.getvalue()


def now():
    return timezone.now()
