"""A realistic large clinic for the benchmarks, written with PostgreSQL COPY (bulk inserts elsewhere).

What a clinic that follows lesions over years looks like: most lesions have one to three
captures, some a long follow-up (20 captures); assessments on a third of the lesions,
histopathology on the excised ones, an audit trail; one showcase patient with 30 lesions of
1, 5 and 20 captures each, which the web benchmark opens.

Every analysis carries the full feature record the pipeline writes. The records are not
written by hand: the real feature code (ml.features.measure, then lesions.notes for the TDS,
the change since the previous capture and the note) runs once on a few synthetic lesion masks
over stored images, and the seed reuses those results, so the schema cannot drift from the
pipeline's.
"""

from __future__ import annotations

import io
import json
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, models, transaction
from django.db.models import Count
from django.utils import timezone

from clinic.models import AuditEvent, Clinic, Membership, Patient
from lesions.images import clean_image_bytes, decode_rgb, encode_png
from lesions.models import Analysis, BodySite, Capture, Histopathology, Lesion
from lesions.notes import change_between, note_from_features, point_with_calibration, tds_record
from ml.contracts import ModelManifest, read_model_manifest
from ml.features import measure
from ml.postprocess import overlay_outline
from ml.synthetic import synthetic_capture

SURNAMES = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Robinson",
            "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson"]
GIVEN = ["Olivia", "Amelia", "Isla", "Ava", "Mia", "Noah", "Oliver", "George", "Arthur", "Leo", "Harry", "Oscar",
         "Grace", "Freya", "Lily", "Jack", "Ivy", "Rosie", "Theo", "Finley"]
# A surname carried by a handful of patients only: the rare-name search of the web benchmark.
RARE_SURNAME = "Quenneville"
COMMON_SURNAME = "Smith"
SHOWCASE_IDENTIFIER = "BENCH-SHOWCASE"
# The showcase patient's 30 lesions cycle through these capture counts.
SHOWCASE_CAPTURES = (1, 5, 20)
SHOWCASE_LESIONS = 30
# Captures per lesion in the rest of the clinic (mean about 3.3, as 200,000 / 60,000).
CAPTURES_PER_LESION = {1: 0.45, 2: 0.2, 3: 0.12, 5: 0.1, 8: 0.08, 20: 0.05}
STRUCTURE_SETS: tuple[tuple[str, ...], ...] = ((), (), (), ("pigment_network",), ("pigment_network", "dots"),
                                               ("structureless", "globules", "streaks"))


@dataclass(frozen=True)
class PoolEntry:
    """One stored image with its synthetic lesion mask and what the pipeline measures on it."""

    image: str
    width: int
    height: int
    sha256: str
    mask: str
    overlay: str
    mm_per_pixel: float
    features: dict


@dataclass
class SeedReport:
    patients: int = 0
    lesions: int = 0
    captures: int = 0
    analyses: int = 0
    histopathology: int = 0
    audit_events: int = 0
    seconds: float = 0.0
    showcase_patient_id: int | None = None
    showcase_lesions: dict[int, list[int]] = field(default_factory=dict)  # captures -> lesion ids


def synthetic_mask(shape: tuple[int, int], seed: int, scale: float) -> np.ndarray:
    """A lesion-like mask: an ellipse with a wavy border, centred as dermoscopy images are."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    cy, cx = h / 2 + rng.uniform(-0.05, 0.05) * h, w / 2 + rng.uniform(-0.05, 0.05) * w
    angle = np.arctan2(yy - cy, xx - cx)
    wobble = 1 + 0.08 * np.sin(rng.integers(3, 7) * angle + rng.uniform(0, np.pi)) + 0.04 * np.sin(11 * angle)
    ry, rx = scale * h * rng.uniform(0.8, 1.0), scale * w * rng.uniform(0.6, 0.8)
    return ((((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2) < wobble**2).astype(np.uint8)


def source_images(data_dir: Path | None, count: int) -> list[bytes]:
    """Real images from the data folder when it is there, else synthetic dermoscopy-like pictures."""
    images_dir = data_dir / "images" if data_dir else None
    sources = sorted(images_dir.glob("*.jpg"))[:count] if images_dir and images_dir.is_dir() else []
    if sources:
        return [p.read_bytes() for p in sources]
    return [encode_png(synthetic_capture(i)) for i in range(count)]


def build_pool(data_dir: Path | None, images: int, sizes: int = 4) -> list[PoolEntry]:
    """Store a few images, each with masks of growing size, and measure them with the real feature code.

    Entries of one image are ordered by lesion size, so a follow-up that walks through them grows.
    """
    pool = []
    for i, data in enumerate(source_images(data_dir, images)):
        clean = clean_image_bytes(data)
        name = default_storage.save(f"captures/seed-{i}.{clean.extension}", ContentFile(clean.content))
        rgb = decode_rgb(clean.content)
        for s in range(sizes):
            mask = synthetic_mask(rgb.shape[:2], seed=i, scale=0.22 + 0.03 * s)
            stem = f"analyses/seed-{i}-{s}"
            mask_name = default_storage.save(f"{stem}-mask.png", ContentFile(encode_png(mask * 255)))
            overlay_name = default_storage.save(f"{stem}-overlay.png",
                                                ContentFile(encode_png(overlay_outline(rgb, mask))))
            mm_per_pixel = 0.02
            pool.append(PoolEntry(name, clean.width, clean.height, clean.sha256, mask_name, overlay_name,
                                  mm_per_pixel, measure(rgb, mask, mm_per_pixel)))
    return pool


class AnalysisRecords:
    """The features JSON and note of an analysis, as the pipeline builds them (lesions.analysis.run_analysis),
    memoised: a seed of 200,000 analyses has only a few hundred distinct ones."""

    def __init__(self, pool: list[PoolEntry], manifest: ModelManifest) -> None:
        self.pool = pool
        self.manifest = manifest
        self.point = point_with_calibration(manifest)  # as run_analysis takes it from the worker's models

    @cache  # noqa: B019 - one instance per seed run
    def features(self, entry: int, previous: int | None, structures: tuple[str, ...]) -> dict:
        features = dict(self.pool[entry].features)
        # Seeded captures are dermoscopic images of melanocytic lesions, taken with one calibration.
        features["tds"] = tds_record(features, list(structures), modality="dermoscopic", melanocytic=True)
        before = self.pool[previous].features if previous is not None else None
        change = (change_between(before, features, before_modality="dermoscopic", after_modality="dermoscopic",
                                 manifest=self.manifest) if before else None)
        features["change"] = change.as_dict() if change else None
        return features

    @cache  # noqa: B019
    def features_json(self, entry: int, previous: int | None, structures: tuple[str, ...]) -> str:
        return json.dumps(self.features(entry, previous, structures))

    @cache  # noqa: B019
    def note(self, probability: float, entry: int, previous: int | None, structures: tuple[str, ...]) -> str:
        return note_from_features(probability, self.point, self.features(entry, previous, structures))


class TableWriter:
    """Rows into one model's table: COPY on PostgreSQL, executemany elsewhere. Columns not given
    take the model field's default, so a field added later (with a default) needs no change here."""

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model
        self.fields = [f for f in model._meta.concrete_fields]
        self.table = model._meta.db_table

    def next_id(self) -> int:
        return (self.model.objects.aggregate(m=models.Max("pk"))["m"] or 0) + 1

    def _prepare(self) -> None:
        """Per column: its attname, how to turn a Python value into a column value, and its default."""
        self.columns = []
        for f in self.fields:
            if f.has_default():
                default = f.get_default
            elif f.null:
                default = None
            elif isinstance(f, models.CharField | models.TextField | models.FileField):
                default = ""
            else:
                default = _required(f)
            kind = "json" if isinstance(f, models.JSONField) else "file" if isinstance(f, models.FileField) else ""
            self.columns.append((f.attname, kind, default))

    def _row(self, values: dict[str, Any]) -> list[Any]:
        row = []
        for attname, kind, default in self.columns:
            value = values[attname] if attname in values else (default() if callable(default) else default)
            if kind == "json":
                value = value.text if isinstance(value, _RawJson) else json.dumps(value)
            elif kind == "file" and hasattr(value, "name"):
                value = value.name
            row.append(value)
        return row

    def write(self, rows: Iterable[dict[str, Any]], chunk: int = 20_000) -> int:
        written, buffer = 0, []
        for values in rows:
            if not buffer and not written:  # rows without an id let the database number them
                pk = self.model._meta.pk
                self.fields = [f for f in self.model._meta.concrete_fields if f is not pk or pk.attname in values]
                self._prepare()
            buffer.append(self._row(values))
            if len(buffer) >= chunk:
                written += self._flush(buffer)
                buffer = []
        if buffer:
            written += self._flush(buffer)
        return written

    def _flush(self, rows: list[list[Any]]) -> int:
        columns = [f.column for f in self.fields]
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                text = io.StringIO("".join("\t".join(_copy_text(v) for v in row) + "\n" for row in rows))
                quoted = ", ".join(f'"{c}"' for c in columns)
                cursor.cursor.copy_expert(f'COPY "{self.table}" ({quoted}) FROM STDIN', text)
            else:
                quoted = ", ".join(f'"{c}"' for c in columns)
                marks = ", ".join(["%s"] * len(columns))
                cursor.executemany(f'INSERT INTO "{self.table}" ({quoted}) VALUES ({marks})', rows)
        return len(rows)

    def reset_sequence(self) -> None:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('\"{self.table}\"', 'id'), "
                               f"(SELECT COALESCE(MAX(id), 1) FROM \"{self.table}\"))")


@dataclass(frozen=True)
class _RawJson:
    text: str


def _required(f: models.Field) -> Callable[[], Any]:
    def missing() -> Any:
        raise ValueError(f"{f.model._meta.db_table}.{f.column} needs a value")

    return missing


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: Any) -> str:
    """One value in PostgreSQL's COPY text format."""
    if value is None:
        return r"\N"
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, str):
        return _escape(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


@lru_cache(maxsize=8192)
def _escape(text: str) -> str:
    # The same feature records and notes repeat thousands of times: escaped once each.
    return text.translate(_COPY_ESCAPES)


def capture_counts(lesions: int, captures: int, rng: random.Random) -> list[int]:
    """Captures per lesion from CAPTURES_PER_LESION, nudged so they add up to `captures` (each at least 1)."""
    if lesions <= 0:
        return []
    if captures < lesions:
        raise ValueError(f"{lesions} lesions need at least as many captures")
    sizes, weights = zip(*CAPTURES_PER_LESION.items())
    counts = rng.choices(sizes, weights, k=lesions)
    diff = captures - sum(counts)
    while diff != 0:
        i = rng.randrange(lesions)
        if diff > 0:
            step = min(diff, 4)
            counts[i] += step
            diff -= step
        elif counts[i] > 1:
            step = min(-diff, counts[i] - 1)
            counts[i] -= step
            diff += step
    return counts


def seed_clinic(*, patients: int, lesions: int, captures: int, data_dir: Path | None, clinic_name: str = "Benchmark Clinic",
                username: str = "bench", password: str = "bench-lesiontrack", images: int = 6, seed: int = 42,
                log: Callable[[str], None] = print) -> SeedReport:
    """Seed one clinic: `patients` patients (the showcase patient among them), `lesions` lesions,
    about `captures` captures, each with a done analysis carrying the full feature record."""
    if patients < 1 or lesions < 1:
        raise ValueError("a clinic needs at least one patient and one lesion")
    started = time.perf_counter()
    rng = random.Random(seed)
    report = SeedReport()
    manifest = read_model_manifest(settings.ML_MODELS_DIR)
    version = manifest.version
    clinic, _ = Clinic.objects.get_or_create(name=clinic_name)
    user, created = get_user_model().objects.get_or_create(username=username)
    if created:
        user.set_password(password)
        user.save()
    Membership.objects.get_or_create(user=user, clinic=clinic)
    pool = build_pool(data_dir, images)
    sizes = 4
    records = AnalysisRecords(pool, manifest)
    log(f"  feature pool: {len(pool)} records measured by ml.features in {time.perf_counter() - started:.1f} s")
    seg_name = f"{manifest.segmenter.name} {manifest.segmenter.version}"
    cls_name = f"{manifest.classifier.name} {manifest.classifier.version}"
    point = records.point
    threshold = point.threshold
    now = timezone.now()

    writers = {m: TableWriter(m) for m in (Patient, Lesion, Capture, Analysis, Histopathology, AuditEvent)}
    with transaction.atomic():
        first_patient = writers[Patient].next_id()
        existing = Patient.objects.filter(clinic=clinic).count()
        has_showcase = Patient.objects.filter(clinic=clinic, identifier=SHOWCASE_IDENTIFIER).exists()

        def patient_rows():
            for i in range(patients):
                number = existing + i
                if i == 0 and not has_showcase:
                    identifier, name = SHOWCASE_IDENTIFIER, "Showcase Thirty-Lesions"
                else:
                    identifier = f"BM{number:07d}"
                    surname = RARE_SURNAME if number % 9973 == 17 else rng.choice(SURNAMES)
                    name = f"{rng.choice(GIVEN)} {surname}"
                yield {"id": first_patient + i, "clinic_id": clinic.pk, "identifier": identifier, "name": name,
                       "sex": rng.choice(["female", "male"]), "skin_type": rng.choice(["I", "II", "III", "IV"]),
                       "date_of_birth": (now - timedelta(days=rng.randint(18 * 365, 90 * 365))).date(),
                       "created_at": now, "updated_at": now}

        report.patients = writers[Patient].write(patient_rows())
        log(f"  patients {report.patients}")

        # Lesions: the showcase patient's 30 first, then one per patient, then the rest at random.
        showcase = first_patient if (patients and not has_showcase) else None
        showcase_count = min(SHOWCASE_LESIONS, lesions) if showcase else 0
        rest = max(0, lesions - showcase_count)
        showcase_sizes = [SHOWCASE_CAPTURES[i % len(SHOWCASE_CAPTURES)] for i in range(showcase_count)]
        if captures - sum(showcase_sizes) < rest:
            raise ValueError(f"{lesions} lesions with the showcase patient's {sum(showcase_sizes)} captures "
                             f"need at least {sum(showcase_sizes) + rest} captures")
        per_lesion = showcase_sizes + capture_counts(rest, captures - sum(showcase_sizes), rng)
        first_lesion = writers[Lesion].next_id()
        lesion_patient = []
        for i in range(len(per_lesion)):
            if i < showcase_count:
                lesion_patient.append(showcase)
            else:
                j = i - showcase_count + (1 if showcase else 0)  # the showcase patient has its lesions
                lesion_patient.append(first_patient + (j if j < patients else rng.randrange(1 if showcase else 0, patients)))
        excised = set(rng.sample(range(showcase_count, len(per_lesion)), k=len(per_lesion) // 30)) if per_lesion else set()
        for i in range(2, showcase_count, 6):  # some of the showcase's long follow-ups end in an excision
            excised.add(i)

        def lesion_rows():
            for i in range(len(per_lesion)):
                assessed = i in excised or rng.random() < 0.33
                decision = "excise" if i in excised else (rng.choice(["reassure", "monitor", "biopsy"]) if assessed else "")
                yield {"id": first_lesion + i, "patient_id": lesion_patient[i],
                       "label": f"{rng.choice(BodySite.labels)} lesion {i}", "body_site": rng.choice(BodySite.values),
                       "status": "excised" if i in excised else "monitoring",
                       "clinical_diagnosis": rng.choice(["naevus", "atypical naevus", "seborrhoeic keratosis",
                                                         "melanoma?"]) if assessed else "",
                       "decision": decision, "assessed_by_id": user.pk if assessed else None,
                       "assessed_at": now - timedelta(days=rng.randint(0, 30)) if assessed else None,
                       "created_by_id": user.pk, "created_at": now - timedelta(days=365 * 10), "updated_at": now}

        report.lesions = writers[Lesion].write(lesion_rows())
        log(f"  lesions {report.lesions}")
        if showcase:
            report.showcase_patient_id = showcase
            for i in range(showcase_count):
                report.showcase_lesions.setdefault(per_lesion[i], []).append(first_lesion + i)

        def histo_rows():
            for i in sorted(excised):
                breslow = round(rng.uniform(0.2, 4.5), 2)
                yield {"lesion_id": first_lesion + i, "in_situ": False, "breslow_mm": breslow,
                       "ulceration": rng.random() < 0.2, "mitotic_rate_per_mm2": rng.randint(0, 6),
                       "sentinel_node": "not_done", "n_category": "N0", "m_category": "M0",
                       "recorded_by_id": user.pk, "recorded_at": now}

        report.histopathology = writers[Histopathology].write(histo_rows())

        first_capture = writers[Capture].next_id()
        first_analysis = writers[Analysis].next_id()
        capture_rows: list[dict] = []
        analysis_rows: list[dict] = []
        audit_rows: list[dict] = []

        def flush_captures() -> None:
            report.captures += writers[Capture].write(capture_rows)
            report.analyses += writers[Analysis].write(analysis_rows)
            report.audit_events += writers[AuditEvent].write(audit_rows)
            capture_rows.clear()
            analysis_rows.clear()
            audit_rows.clear()
            log(f"  captures {report.captures}")

        capture_id, analysis_id = first_capture, first_analysis
        for i, count in enumerate(per_lesion):
            lesion_id = first_lesion + i
            image = rng.randrange(len(pool) // sizes)
            size = rng.randrange(sizes)
            previous: int | None = None
            # Captures spread over up to ten years, oldest first.
            times = sorted(now - timedelta(days=d, minutes=rng.randrange(600)) for d in rng.sample(range(1, 3650), k=count))
            audit_rows.append(_audit(user, "create", "Lesion", lesion_id, clinic.pk, times[0]))
            for k, when in enumerate(times):
                entry_index = image * sizes + min(sizes - 1, size + (k * 2 // max(count, 1)))
                entry = pool[entry_index]
                structures = rng.choice(STRUCTURE_SETS)
                probability = round(rng.random() ** 3, 2)
                capture_rows.append({"id": capture_id, "lesion_id": lesion_id, "image": entry.image,
                                     "width": entry.width, "height": entry.height, "sha256": entry.sha256,
                                     "modality": "dermoscopic", "source": "upload", "device": "seeded dermoscope",
                                     "mm_per_pixel": entry.mm_per_pixel, "structures": list(structures),
                                     "taken_at": when, "taken_by_id": user.pk, "created_at": when})
                analysis_rows.append({
                    "id": analysis_id, "capture_id": capture_id, "model_version": version, "status": "done",
                    "attempts": 1, "queued_at": when, "started_at": when, "finished_at": when,
                    "worker": "seed", "device": "CPU", "segmenter_name": seg_name, "classifier_name": cls_name,
                    "probability": probability, "threshold": threshold, "operating_point": point.as_dict(),
                    "mask": entry.mask, "overlay": entry.overlay,
                    "features": _RawJson(records.features_json(entry_index, previous, structures)),
                    "timings": {}, "stage_note": records.note(probability, entry_index, previous, structures)})
                audit_rows.append(_audit(user, "create", "Capture", capture_id, clinic.pk, when))
                if rng.random() < 0.5:
                    audit_rows.append(_audit(user, "view", "Lesion", lesion_id, clinic.pk, when + timedelta(minutes=5)))
                previous = entry_index
                capture_id += 1
                analysis_id += 1
            if len(capture_rows) >= 20_000:
                flush_captures()
        flush_captures()
        for writer in writers.values():
            writer.reset_sequence()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # fresh statistics, or the planner guesses from empty tables
            cursor.execute("ANALYZE")
    report.seconds = time.perf_counter() - started
    return report


def _audit(user: Any, action: str, object_type: str, object_id: int, clinic_id: int, at: datetime) -> dict:
    return {"at": at, "user_id": user.pk, "username": user.get_username(), "action": action,
            "object_type": object_type, "object_id": str(object_id), "object_repr": f"{object_type} {object_id}",
            "clinic_id": clinic_id, "ip_address": "127.0.0.1", "detail": {"seeded": True}}


def showcase_lesions(clinic_name: str = "Benchmark Clinic") -> dict[int, int]:
    """The showcase patient's first lesion with 1, 5 and 20 captures: {captures: lesion id}."""
    rows = (Lesion.objects.filter(patient__clinic__name=clinic_name, patient__identifier=SHOWCASE_IDENTIFIER)
            .annotate(n=Count("captures")).order_by("id").values_list("id", "n"))
    found: dict[int, int] = {}
    for pk, n in rows:
        found.setdefault(n, pk)
    return found

