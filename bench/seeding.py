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

import itertools
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from queue import Full, Queue
from typing import Any, TypeVar

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError, IntegrityError, connection, models, transaction
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
# A surname carried by three patients at every size of clinic from 0.1x up: the rare-name search of
# the web benchmark lists the same three rows at each size, so the growth table compares the search,
# not the length of its result (one in 9,973 patients, as before, listed 1, 3 and 21).
RARE_SURNAME = "Quenneville"
RARE_PATIENT_NUMBERS = frozenset({17, 1017, 1917})
COMMON_SURNAME = "Smith"
SHOWCASE_IDENTIFIER = "BENCH-SHOWCASE"
# The showcase patient's 30 lesions cycle through these capture counts.
SHOWCASE_CAPTURES = (1, 5, 20)
SHOWCASE_LESIONS = 30
# Captures per lesion in the rest of the clinic (mean about 3.3, as 200,000 / 60,000).
CAPTURES_PER_LESION = {1: 0.45, 2: 0.2, 3: 0.12, 5: 0.1, 8: 0.08, 20: 0.05}
STRUCTURE_SETS: tuple[tuple[str, ...], ...] = ((), (), (), ("pigment_network",), ("pigment_network", "dots"),
                                               ("structureless", "globules", "streaks"))
SEXES = ("female", "male")
SKIN_TYPES = ("I", "II", "III", "IV")
DECISIONS = ("reassure", "monitor", "biopsy")  # of an assessed lesion that was not excised
DIAGNOSES = ("naevus", "atypical naevus", "seborrhoeic keratosis", "melanoma?")
# In the order they are written: a row's parents come before it.
SEEDED_MODELS: tuple[type[models.Model], ...] = (Patient, Lesion, Histopathology, Capture, Analysis, AuditEvent)


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
    memoised: a seed of 200,000 analyses has only a few hundred distinct feature records (and some
    thousands of notes, which also depend on the probability)."""

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

    # The same, as COPY text (escaped once per distinct record, not once per row).
    @cache  # noqa: B019
    def features_copy(self, entry: int, previous: int | None, structures: tuple[str, ...]) -> str:
        return copy_text(self.features_json(entry, previous, structures))

    @cache  # noqa: B019
    def note_copy(self, probability: float, entry: int, previous: int | None, structures: tuple[str, ...]) -> str:
        return copy_text(self.note(probability, entry, previous, structures))


@dataclass(frozen=True)
class Arg:
    """A column of a TableWriter template that varies per row: the row's positional argument
    `index`, written into `pattern` ("Capture {}" for "Capture 17"). The argument must already be
    COPY text: an int, float, date or aware datetime (whose str() is), or copy_text() of anything else."""

    index: int
    pattern: str = "{}"


class RowTemplate:
    """One table row as a line of COPY text: the constant text between the arguments is joined,
    not scanned (str.format reads through the whole template on every row, and an analysis row
    has some 4 KB of constants and feature record)."""

    def __init__(self, pieces: list[str | int]) -> None:
        self.texts = [p if isinstance(p, str) else "" for p in pieces]
        self.slots = [(k, p) for k, p in enumerate(pieces) if not isinstance(p, str)]

    def __call__(self, *args: Any) -> str:
        texts = self.texts[:]
        for k, index in self.slots:
            value = args[index]
            texts[k] = value if type(value) is str else str(value)
        return "".join(texts)


class TableWriter:
    """Rows into one model's table, as lines of PostgreSQL's COPY text format made by a RowTemplate
    (one call per row: the seed writes millions of rows, and Python per field and row was most of
    its time). COPY on PostgreSQL; elsewhere the lines are read back into values and inserted
    with executemany. Columns the template does not name take the model field's default
    (evaluated once), so a field added later (with a default) needs no change here."""

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model
        self.table = model._meta.db_table
        self.fields: list[models.Field] = []

    def next_id(self) -> int:
        return (self.model.objects.aggregate(m=models.Max("pk"))["m"] or 0) + 1

    def template(self, columns: dict[str, Any]) -> RowTemplate:
        """The template of one row: each column's Arg, or its constant value, by attname.
        Without the primary key among `columns` the database numbers the rows."""
        concrete = {f.attname: f for f in self.model._meta.concrete_fields}
        unknown = set(columns) - set(concrete)
        if unknown:
            raise ValueError(f"{self.table} has no columns {sorted(unknown)}")
        pk = self.model._meta.pk
        self.fields = [f for f in concrete.values() if f is not pk or f.attname in columns]
        pieces: list[str | int] = [""]
        for n, f in enumerate(self.fields):
            value = columns[f.attname] if f.attname in columns else _default(f)
            separator = "\t" if n else ""
            if isinstance(value, Arg):
                prefix, _, suffix = value.pattern.partition("{}")
                pieces[-1] += separator + copy_text(prefix)
                pieces += [value.index, copy_text(suffix)]
            else:
                pieces[-1] += separator + copy_text(_column_value(f, value))
        pieces[-1] += "\n"
        return RowTemplate(pieces)

    def copy(self, lines: Iterable[str], chunk: int = 50_000) -> int:
        """Write the lines of the last template(), `chunk` rows per statement; returns how many.
        On PostgreSQL each COPY streams from the generator: the rows are built while the server
        parses the ones before (two processes, so both cores work)."""
        if not self.fields:
            raise ValueError("call template() first")
        written = 0
        rows = iter(lines)
        while True:
            stream = _LineStream(rows, chunk)
            if connection.vendor == "postgresql":
                quoted = ", ".join(f'"{f.column}"' for f in self.fields)
                with connection.cursor() as cursor:
                    cursor.cursor.copy_expert(f'COPY "{self.table}" ({quoted}) FROM STDIN', stream, size=1 << 20)
            else:
                self._insert(stream.read())
            written += stream.count
            if stream.count < chunk:
                return written

    def _insert(self, text: str) -> None:
        """COPY text back into Python values, for the databases without COPY (SQLite on a laptop)."""
        if not text:
            return
        converters = [_from_copy(f) for f in self.fields]
        # Every line ends in "\n" (not str.splitlines: a value may hold other line breaks, unescaped).
        rows = [[convert(_unescape(value)) for convert, value in zip(converters, line.split("\t"))]
                for line in text[:-1].split("\n")]
        quoted = ", ".join(f'"{f.column}"' for f in self.fields)
        marks = ", ".join(["%s"] * len(self.fields))
        with connection.cursor() as cursor:
            cursor.executemany(f'INSERT INTO "{self.table}" ({quoted}) VALUES ({marks})', rows)

    def reset_sequence(self) -> None:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('\"{self.table}\"', 'id'), "
                               f"(SELECT COALESCE(MAX(id), 1) FROM \"{self.table}\"))")


class _LineStream:
    """A file for cursor.copy_expert that reads up to `limit` lines from an iterator, as they are made."""

    def __init__(self, lines: Iterator[str], limit: int) -> None:
        self.lines = lines
        self.limit = limit
        self.count = 0

    def read(self, size: int = -1) -> str:
        parts: list[str] = []
        length = 0
        for line in itertools.islice(self.lines, self.limit - self.count):
            parts.append(line)
            length += len(line)
            if 0 <= size <= length:
                break
        self.count += len(parts)
        return "".join(parts)


def _default(f: models.Field) -> Any:
    if f.has_default():
        return f.get_default()
    if f.null:
        return None
    if isinstance(f, models.CharField | models.TextField | models.FileField):
        return ""
    raise ValueError(f"{f.model._meta.db_table}.{f.column} needs a value")


def _column_value(f: models.Field, value: Any) -> Any:
    """A constant in the column's database form: JSON as its text, a file as its name."""
    if value is None:
        return None
    if isinstance(f, models.JSONField):
        return json.dumps(value)
    if isinstance(f, models.FileField) and hasattr(value, "name"):
        return value.name
    return value


_COPY_UNESCAPES = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}
_UNESCAPE = re.compile(r"\\[\\tnr]")


def copy_text(value: Any) -> str:
    """One value in PostgreSQL's COPY text format."""
    if value is None:
        return r"\N"
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    # str.replace, four times, is some 30 times faster than str.translate with a mapping.
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    return text.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _unescape(text: str) -> str | None:
    if text == r"\N":
        return None
    return _UNESCAPE.sub(lambda m: _COPY_UNESCAPES[m.group()], text) if "\\" in text else text


def _from_copy(f: models.Field) -> Callable[[str | None], Any]:
    """COPY text of field `f` to what the database adapter takes (only off PostgreSQL)."""
    if isinstance(f, models.JSONField):
        return lambda text: text  # already JSON
    if isinstance(f, models.BooleanField):
        return lambda text: None if text is None else text == "t"

    def convert(text: str | None) -> Any:
        return None if text is None else f.get_db_prep_save(f.to_python(text), connection)

    return convert


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
    point = records.point
    now = timezone.now()

    writers = {m: TableWriter(m) for m in SEEDED_MODELS}
    with transaction.atomic(), BulkLoad(writers, clinic.pk, log):
        first_patient = writers[Patient].next_id()
        existing = Patient.objects.filter(clinic=clinic).count()
        has_showcase = Patient.objects.filter(clinic=clinic, identifier=SHOWCASE_IDENTIFIER).exists()

        # Each row is one call of its table's RowTemplate; the random draws are made in the same
        # order as the dict-per-row seed made them, so a seed number gives the same clinic.
        patient_line = writers[Patient].template({
            "id": Arg(0), "identifier": Arg(1), "name": Arg(2), "sex": Arg(3), "skin_type": Arg(4),
            "date_of_birth": Arg(5), "clinic_id": clinic.pk, "created_at": now, "updated_at": now})

        def patient_lines() -> Iterator[str]:
            for i in range(patients):
                number = existing + i
                if i == 0 and not has_showcase:
                    identifier, name = SHOWCASE_IDENTIFIER, "Showcase Thirty-Lesions"
                else:
                    identifier = f"BM{number:07d}"
                    surname = RARE_SURNAME if number in RARE_PATIENT_NUMBERS else rng.choice(SURNAMES)
                    name = f"{rng.choice(GIVEN)} {surname}"
                yield patient_line(first_patient + i, identifier, name, rng.choice(SEXES), rng.choice(SKIN_TYPES),
                                   (now - timedelta(days=rng.randint(18 * 365, 90 * 365))).date())

        report.patients = writers[Patient].copy(patient_lines())
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

        lesion_columns = {"id": Arg(0), "patient_id": Arg(1), "label": Arg(2), "body_site": Arg(3),
                          "status": Arg(4), "created_by_id": user.pk, "created_at": now - timedelta(days=365 * 10),
                          "updated_at": now}
        lesion_line = writers[Lesion].template(lesion_columns)
        assessed_line = writers[Lesion].template({
            **lesion_columns, "clinical_diagnosis": Arg(5), "decision": Arg(6), "assessed_by_id": user.pk,
            "assessed_at": Arg(7)})
        labels = [copy_text(label) for label in BodySite.labels]
        sites = [copy_text(site) for site in BodySite.values]

        def lesion_lines() -> Iterator[str]:
            for i in range(len(per_lesion)):
                assessed = i in excised or rng.random() < 0.33
                decision = "excise" if i in excised else (rng.choice(DECISIONS) if assessed else "")
                label = f"{rng.choice(labels)} lesion {i}"
                site = rng.choice(sites)
                status = "excised" if i in excised else "monitoring"
                if assessed:
                    yield assessed_line(first_lesion + i, lesion_patient[i], label, site, status,
                                               rng.choice(DIAGNOSES), decision,
                                               now - timedelta(days=rng.randint(0, 30)))
                else:
                    yield lesion_line(first_lesion + i, lesion_patient[i], label, site, status)

        report.lesions = writers[Lesion].copy(lesion_lines())
        log(f"  lesions {report.lesions}")
        if showcase:
            report.showcase_patient_id = showcase
            for i in range(showcase_count):
                report.showcase_lesions.setdefault(per_lesion[i], []).append(first_lesion + i)

        histo_line = writers[Histopathology].template({
            "lesion_id": Arg(0), "in_situ": False, "breslow_mm": Arg(1), "ulceration": Arg(2),
            "mitotic_rate_per_mm2": Arg(3), "sentinel_node": "not_done", "n_category": "N0", "m_category": "M0",
            "recorded_by_id": user.pk, "recorded_at": now})

        def histo_lines() -> Iterator[str]:
            for i in sorted(excised):
                breslow = round(rng.uniform(0.2, 4.5), 2)
                yield histo_line(first_lesion + i, breslow, "t" if rng.random() < 0.2 else "f", rng.randint(0, 6))

        report.histopathology = writers[Histopathology].copy(histo_lines())

        first_capture = writers[Capture].next_id()
        first_analysis = writers[Analysis].next_id()
        capture_line = writers[Capture].template({
            "id": Arg(0), "lesion_id": Arg(1), "image": Arg(2), "width": Arg(3), "height": Arg(4), "sha256": Arg(5),
            "mm_per_pixel": Arg(6), "structures": Arg(7), "taken_at": Arg(8), "created_at": Arg(8),
            "modality": "dermoscopic", "source": "upload", "device": "seeded dermoscope", "taken_by_id": user.pk})
        analysis_line = writers[Analysis].template({
            "id": Arg(0), "capture_id": Arg(1), "queued_at": Arg(2), "started_at": Arg(2), "finished_at": Arg(2),
            "probability": Arg(3), "mask": Arg(4), "overlay": Arg(5), "features": Arg(6), "stage_note": Arg(7),
            "model_version": version, "status": "done", "attempts": 1, "worker": "seed", "device": "CPU",
            "segmenter_name": f"{manifest.segmenter.name} {manifest.segmenter.version}",
            "classifier_name": f"{manifest.classifier.name} {manifest.classifier.version}",
            "threshold": point.threshold, "operating_point": point.as_dict(), "timings": {}})
        audit_columns = {"at": Arg(0), "object_id": Arg(1), "user_id": user.pk, "username": user.get_username(),
                         "clinic_id": clinic.pk, "ip_address": "127.0.0.1", "detail": {"seeded": True}}
        audit_lines = {(action, kind): writers[AuditEvent].template({
            **audit_columns, "action": action, "object_type": kind, "object_repr": Arg(1, kind + " {}")})
            for action, kind in (("create", "Lesion"), ("create", "Capture"), ("view", "Lesion"))}
        lesion_created, capture_created, lesion_viewed = audit_lines.values()
        # Per pool entry: the capture's image columns and the analysis's mask and overlay, as COPY text.
        entry_columns = [(copy_text(e.image), e.width, e.height, e.sha256, e.mm_per_pixel) for e in pool]
        entry_files = [(copy_text(e.mask), copy_text(e.overlay)) for e in pool]
        structure_texts = {s: copy_text(json.dumps(list(s))) for s in STRUCTURE_SETS}

        def capture_chunks() -> Iterator[tuple[list[str], list[str], list[str]]]:
            """The captures, analyses and audit events of some 20,000 captures at a time."""
            capture_lines: list[str] = []
            analysis_lines: list[str] = []
            audit_rows: list[str] = []
            capture_id, analysis_id = first_capture, first_analysis
            days = range(1, 3650)
            for i, count in enumerate(per_lesion):
                lesion_id = first_lesion + i
                image = rng.randrange(len(pool) // sizes)
                size = rng.randrange(sizes)
                previous: int | None = None
                # Captures spread over up to ten years, oldest first.
                times = sorted(now - timedelta(days=d, minutes=rng.randrange(600)) for d in rng.sample(days, k=count))
                audit_rows.append(lesion_created(times[0], lesion_id))
                for k, when in enumerate(times):
                    entry_index = image * sizes + min(sizes - 1, size + (k * 2 // max(count, 1)))
                    structures = rng.choice(STRUCTURE_SETS)
                    probability = round(rng.random() ** 3, 2)
                    capture_lines.append(capture_line(capture_id, lesion_id, *entry_columns[entry_index],
                                                      structure_texts[structures], when))
                    analysis_lines.append(analysis_line(
                        analysis_id, capture_id, when, probability, *entry_files[entry_index],
                        records.features_copy(entry_index, previous, structures),
                        records.note_copy(probability, entry_index, previous, structures)))
                    audit_rows.append(capture_created(when, capture_id))
                    if rng.random() < 0.5:
                        audit_rows.append(lesion_viewed(when + timedelta(minutes=5), lesion_id))
                    previous = entry_index
                    capture_id += 1
                    analysis_id += 1
                if len(capture_lines) >= 20_000:
                    yield capture_lines, analysis_lines, audit_rows
                    capture_lines, analysis_lines, audit_rows = [], [], []
            if capture_lines:
                yield capture_lines, analysis_lines, audit_rows

        # The next chunk is built in a thread while this one is written: psycopg2 lets go of the GIL
        # while the server works, so Python and PostgreSQL each keep a core busy.
        for capture_lines, analysis_lines, audit_rows in _ahead(capture_chunks()):
            report.captures += writers[Capture].copy(capture_lines)
            report.analyses += writers[Analysis].copy(analysis_lines)
            report.audit_events += writers[AuditEvent].copy(audit_rows)
            log(f"  captures {report.captures}")
        for writer in writers.values():
            writer.reset_sequence()
    if connection.vendor == "postgresql":
        analysed = time.perf_counter()
        # Fresh statistics, or the planner guesses from empty tables. VACUUM too where it can run (not
        # inside a transaction, as under a test): a table just loaded has no visibility map, so every
        # index-only scan (the worklist's counts, the name search) visits the heap row by row until
        # autovacuum reaches it, on a 10x clinic in the middle of the benchmark; a clinic's database
        # in use has been vacuumed.
        statement = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
        with connection.cursor() as cursor:
            cursor.execute(statement)
        log(f"  {statement} {time.perf_counter() - analysed:.1f} s")
    report.seconds = time.perf_counter() - started
    return report


T = TypeVar("T")


def _ahead(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """What `items` yields, made in a thread up to `depth` items ahead of the consumer. An error in
    the thread is raised here; a consumer that stops early (or fails) stops the thread."""
    queue: Queue[tuple[bool, Any]] = Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((False, item)):
                    return
            put((True, None))
        except BaseException as exc:  # handed to the consumer, which raises it
            put((True, exc))

    thread = threading.Thread(target=produce, name="seed-rows", daemon=True)
    thread.start()
    try:
        while True:
            done, item = queue.get()
            if done:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()
        thread.join()


class BulkLoad:
    """What makes a bulk load fast on PostgreSQL, for the transaction of one seed, undone before it commits.

    - session_replication_role = replica (SET LOCAL, so this session and transaction only): neither
      the data generation triggers nor the foreign key checks fire per statement and row. The
      references are then checked once per foreign key with one anti-join over the new rows, and
      the clinic's generation is counted once, by the same clinic_data_changed() the triggers call.
      Nothing in the catalog changes (the triggers stay enabled for every other session, and
      clinic.selectors.missing_generation_triggers sees them), and a seed that fails rolls the
      setting back with its rows.
    - A table that is empty when the seed starts loses its secondary indexes (none that back a
      constraint) for the load and gets them back, built in one sort each, before the commit.

    Setting the role needs a superuser (or, from PostgreSQL 15, the SET privilege on it); without
    it the load runs with the triggers, checks and indexes as they are, only slower.
    """

    def __init__(self, writers: dict[type[models.Model], TableWriter], clinic_id: int,
                 log: Callable[[str], None]) -> None:
        self.writers = writers
        self.clinic_id = clinic_id
        self.log = log
        self.active = False
        self.first_ids: dict[type[models.Model], int] = {}
        self.indexes: list[tuple[str, str]] = []  # (name, definition)

    def __enter__(self) -> BulkLoad:
        if connection.vendor != "postgresql":
            return self
        try:
            with transaction.atomic(), connection.cursor() as cursor:  # a savepoint: a refusal leaves the seed usable
                cursor.execute("SELECT current_setting('session_replication_role')")
                self.previous_role = cursor.fetchone()[0]
                cursor.execute("SET LOCAL session_replication_role = replica")
        except DatabaseError as exc:
            self.log(f"  note: {exc}".rstrip() + " (seeding with triggers and per-row checks)")
            return self
        self.active = True
        self.first_ids = {model: writer.next_id() for model, writer in self.writers.items()}
        with connection.cursor() as cursor:
            for writer in self.writers.values():
                cursor.execute(f'SELECT EXISTS (SELECT 1 FROM "{writer.table}")')
                if cursor.fetchone()[0]:
                    continue
                cursor.execute(
                    "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                    "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary AND i.indpred IS NULL "
                    "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) "
                    "ORDER BY i.indexrelid", [writer.table])
                self.indexes += cursor.fetchall()
            if self.indexes:
                cursor.execute("DROP INDEX " + ", ".join(name for name, _ in self.indexes))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: Any) -> None:
        # On an error the transaction (or its savepoint) rolls back the role, the dropped indexes
        # and the rows together: nothing to undo by hand, and no SQL can run in it now anyway.
        if exc_type is not None or not self.active:
            return
        with connection.cursor() as cursor:
            if self.indexes:
                started = time.perf_counter()
                cursor.execute("SELECT current_setting('maintenance_work_mem')")
                previous_memory = cursor.fetchone()[0]
                cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")  # the index sorts in memory
                for _, definition in self.indexes:
                    cursor.execute(definition)
                cursor.execute("SELECT set_config('maintenance_work_mem', %s, true)", [previous_memory])
                self.log(f"  {len(self.indexes)} indexes built in {time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
            self._check_references(cursor)
            self.log(f"  references checked in {time.perf_counter() - started:.1f} s")
            cursor.execute("SELECT set_config('session_replication_role', %s, true)", [self.previous_role])
            cursor.execute("SELECT to_regprocedure('clinic_data_changed(bigint[])') IS NOT NULL")
            if cursor.fetchone()[0]:  # what the skipped triggers would have counted, once
                cursor.execute("SELECT clinic_data_changed(ARRAY[%s]::bigint[])", [self.clinic_id])

    def _check_references(self, cursor: Any) -> None:
        """Every foreign key of the new rows finds its row: the checks the replica role skipped."""
        for model, writer in self.writers.items():
            pk = model._meta.pk.column
            for f in model._meta.concrete_fields:
                if not (f.many_to_one or f.one_to_one) or not getattr(f, "db_constraint", False):
                    continue
                parent, target = f.related_model._meta.db_table, f.target_field.column
                cursor.execute(
                    f'SELECT count(*) FROM "{writer.table}" c WHERE c."{pk}" >= %s AND c."{f.column}" IS NOT NULL '
                    f'AND NOT EXISTS (SELECT 1 FROM "{parent}" p WHERE p."{target}" = c."{f.column}")',
                    [self.first_ids[model]])
                missing = cursor.fetchone()[0]
                if missing:
                    raise IntegrityError(f"{missing} new rows of {writer.table}.{f.column} refer to no {parent} row")


def showcase_lesions(clinic_name: str = "Benchmark Clinic") -> dict[int, int]:
    """The showcase patient's first lesion with 1, 5 and 20 captures: {captures: lesion id}."""
    rows = (Lesion.objects.filter(patient__clinic__name=clinic_name, patient__identifier=SHOWCASE_IDENTIFIER)
            .annotate(n=Count("captures")).order_by("id").values_list("id", "n"))
    found: dict[int, int] = {}
    for pk, n in rows:
        found.setdefault(n, pk)
    return found

