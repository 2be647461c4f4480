"""Seed a realistic large clinic database quickly with bulk inserts (for benchmarks).

A few real images (from ../shared/data when present, else synthetic) are stored once and
shared by many captures, so every capture's file exists without storing 200,000 files.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.utils import timezone

from clinic.models import Clinic, Membership, Patient
from lesions.images import clean_image_bytes, encode_png
from lesions.models import Analysis, BodySite, Capture, Lesion
from ml.synthetic import synthetic_lesion

SHARED_IMAGES = Path(settings.BASE_DIR).parent / "shared" / "data" / "lesions-dev" / "images"
SURNAMES = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Robinson",
            "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson"]
GIVEN = ["Olivia", "Amelia", "Isla", "Ava", "Mia", "Noah", "Oliver", "George", "Arthur", "Leo", "Harry", "Oscar",
         "Grace", "Freya", "Lily", "Jack", "Ivy", "Rosie", "Theo", "Finley"]


class Command(BaseCommand):
    help = "Create a large clinic (patients, lesions, captures with done analyses) for benchmarks."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--patients", type=int, default=20_000)
        parser.add_argument("--lesions", type=int, default=60_000)
        parser.add_argument("--captures", type=int, default=200_000)
        parser.add_argument("--clinic", default="Benchmark Clinic")
        parser.add_argument("--username", default="bench")
        parser.add_argument("--password", default="bench-lesiontrack")
        parser.add_argument("--images", type=int, default=8, help="distinct stored images to share")
        parser.add_argument("--batch", type=int, default=5000)

    def handle(self, *args, patients: int, lesions: int, captures: int, clinic: str, username: str, password: str,
               images: int, batch: int, **options) -> None:
        started = time.perf_counter()
        rng = random.Random(42)
        clinic_obj, _ = Clinic.objects.get_or_create(name=clinic)
        user, created = get_user_model().objects.get_or_create(username=username)
        if created:
            user.set_password(password)
            user.save()
        Membership.objects.get_or_create(user=user, clinic=clinic_obj)
        files = self._store_images(images)
        version = "seg-seed+cls-seed"
        start_index = Patient.objects.filter(clinic=clinic_obj).count()
        patient_rows = [Patient(clinic=clinic_obj, identifier=f"BM{start_index + i:07d}",
                                name=f"{rng.choice(GIVEN)} {rng.choice(SURNAMES)}-{start_index + i}",
                                sex=rng.choice(["female", "male"]), skin_type=rng.choice(["I", "II", "III", "IV"]))
                        for i in range(patients)]
        with transaction.atomic():
            created_patients = Patient.objects.bulk_create(patient_rows, batch_size=batch)
            lesion_rows = [Lesion(patient=created_patients[i % patients] if i < patients else rng.choice(created_patients),
                                  label=f"Lesion {i}", body_site=rng.choice(BodySite.values))
                           for i in range(lesions)]
            created_lesions = Lesion.objects.bulk_create(lesion_rows, batch_size=batch)
            now = timezone.now()
            for offset in range(0, captures, batch):
                count = min(batch, captures - offset)
                capture_rows = []
                for i in range(offset, offset + count):
                    name, width, height, sha = files[i % len(files)]
                    lesion = created_lesions[i % lesions] if i < lesions else rng.choice(created_lesions)
                    capture_rows.append(Capture(lesion=lesion, image=name, width=width, height=height, sha256=sha,
                                                taken_at=now - timedelta(days=rng.randint(0, 3650))))
                made = Capture.objects.bulk_create(capture_rows, batch_size=batch)
                Analysis.objects.bulk_create([
                    Analysis(capture=c, model_version=version, status=Analysis.Status.DONE,
                             probability=rng.random() ** 3, threshold=0.2, finished_at=now,
                             overlay=files[0][0], mask=files[0][0],
                             features={"diameter": {"value": 6.0, "unit": "mm", "area": 28.0, "area_unit": "mm²"}},
                             stage_note="Seeded analysis.") for c in made], batch_size=batch)
                self.stdout.write(f"  captures {offset + count}/{captures}")
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:  # fresh statistics, or the planner guesses from an empty table
                cursor.execute("ANALYZE")
        self.stdout.write(self.style.SUCCESS(
            f"seeded {patients} patients, {lesions} lesions, {captures} captures with analyses in "
            f"{time.perf_counter() - started:.1f} s; login {username} / {password}"))

    def _store_images(self, count: int) -> list[tuple[str, int, int, str]]:
        sources = sorted(SHARED_IMAGES.glob("*.jpg"))[:count] if SHARED_IMAGES.is_dir() else []
        stored = []
        for i in range(count):
            if sources:
                data = sources[i % len(sources)].read_bytes()
            else:
                data = encode_png(synthetic_lesion(150, 200, seed=i))
            clean = clean_image_bytes(data)
            name = default_storage.save(f"captures/seed-{i}.{clean.extension}", ContentFile(clean.content))
            stored.append((name, clean.width, clean.height, clean.sha256))
        return stored
