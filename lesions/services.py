"""Writes for lesions, captures and analyses. Views and Celery tasks stay thin and call these."""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from clinic import audit
from clinic.models import AuditEvent, Patient
from lesions.forms import DERMOSCOPIC_STRUCTURES
from lesions.images import clean_image_bytes
from lesions.models import Analysis, Capture, Histopathology, Lesion
from lesions.notes import note_from_features, operating_point_of, tds_record
from lesions.queueing import enqueue_analysis, enqueue_thumbnail
from lesions.storage_names import random_name
from ml import contracts
from ml.contracts import ModelManifest

logger = logging.getLogger("lesions.services")


@functools.cache
def _manifest_in(models_dir: str) -> ModelManifest:
    return contracts.read_model_manifest(models_dir)


def current_manifest() -> ModelManifest:
    """The shipped models' manifest, read once per process (JSON only: no numpy, no TensorFlow).
    Shipping new models means restarting the processes, as it does for the workers."""
    return _manifest_in(str(settings.ML_MODELS_DIR))


def current_model_version() -> str:
    return current_manifest().version


def lesion_create(*, request: HttpRequest | None, user: Any, patient: Patient, data: dict[str, Any]) -> Lesion:
    with transaction.atomic():
        lesion = Lesion.objects.create(patient=patient, created_by=user, **data)
        audit.record(request=request, user=user, action=AuditEvent.Action.CREATE, obj=lesion,
                     clinic_id=patient.clinic_id)
    return lesion


def lesion_update(*, request: HttpRequest | None, user: Any, lesion: Lesion, changed: list[str]) -> Lesion:
    with transaction.atomic():
        if {"clinical_diagnosis", "decision"} & set(changed):
            lesion.assessed_by, lesion.assessed_at = user, timezone.now()
        lesion.save()
        audit.record(request=request, user=user, action=AuditEvent.Action.CHANGE, obj=lesion,
                     clinic_id=lesion.patient.clinic_id, detail={"fields": changed})
    return lesion


def histopathology_record(*, request: HttpRequest | None, user: Any, histopathology: Histopathology,
                          changed: list[str]) -> Histopathology:
    with transaction.atomic():
        created = histopathology.pk is None
        histopathology.recorded_by = user
        histopathology.save()
        audit.record(request=request, user=user,
                     action=AuditEvent.Action.CREATE if created else AuditEvent.Action.CHANGE,
                     obj=histopathology, clinic_id=histopathology.lesion.patient.clinic_id,
                     detail={"fields": changed})
    return histopathology


def capture_create(*, request: HttpRequest | None, user: Any, lesion: Lesion, data: bytes, filename: str = "",
                   modality: str = Capture.Modality.DERMOSCOPIC, source: str = Capture.Source.UPLOAD,
                   device: str = "", mm_per_pixel: float | None = None, field_of_view_mm: float | None = None,
                   taken_at: datetime | None = None) -> Capture:
    """Validate, clean and store an image, then queue its analysis once the row is committed.

    Raises ValidationError (with a message for the form) before anything is written.
    """
    clean = clean_image_bytes(data)
    if mm_per_pixel is None and field_of_view_mm:
        mm_per_pixel = field_of_view_mm / clean.width
    stored_name = default_storage.save(f"captures/{random_name()}.{clean.extension}", ContentFile(clean.content))
    try:
        with transaction.atomic():
            capture = Capture.objects.create(
                lesion=lesion, image=stored_name, width=clean.width, height=clean.height, sha256=clean.sha256,
                original_filename=filename[:200], modality=modality, source=source, device=device[:120],
                mm_per_pixel=mm_per_pixel, taken_at=taken_at or timezone.now(), taken_by=user)
            analysis = Analysis.objects.create(capture=capture, model_version=current_model_version())
            audit.record(request=request, user=user, action=AuditEvent.Action.CREATE, obj=capture,
                         clinic_id=lesion.patient.clinic_id, detail={"sha256": clean.sha256, "source": source})
            transaction.on_commit(lambda: enqueue_analysis(analysis.pk))
            transaction.on_commit(lambda: enqueue_thumbnail(capture.pk))
    except Exception:
        # The row never committed: do not leave an orphaned file behind.
        default_storage.delete(stored_name)
        raise
    return capture


def reanalyze(*, captures, model_version: str | None = None) -> list[int]:
    """Queue a fresh analysis of each capture with the current (or given) model version."""
    version = model_version or current_model_version()
    queued = []
    for capture in captures:
        with transaction.atomic():
            analysis, created = Analysis.objects.get_or_create(capture=capture, model_version=version)
            if not created and analysis.is_pending:
                continue
            if not created:
                analysis.status, analysis.attempts, analysis.error = Analysis.Status.QUEUED, 0, ""
                analysis.queued_at = timezone.now()
                analysis.save(update_fields=["status", "attempts", "error", "queued_at"])
            transaction.on_commit(lambda pk=analysis.pk: enqueue_analysis(pk))
            queued.append(analysis.pk)
    return queued


def validate_structures(values: list[str]) -> list[str]:
    allowed = dict(DERMOSCOPIC_STRUCTURES)
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValidationError(f"Unknown structures: {', '.join(unknown)}")
    return values


def capture_set_structures(*, request: HttpRequest | None, user: Any, capture: Capture,
                           structures: list[str]) -> Capture:
    """Record the clinician's dermoscopic structures and refresh the TDS and note of done analyses."""
    validate_structures(structures)
    with transaction.atomic():
        capture.structures = structures
        capture.save(update_fields=["structures"])
        for analysis in capture.analyses.select_for_update().filter(status=Analysis.Status.DONE):
            if not analysis.features:
                continue
            analysis.features["tds"] = tds_record(analysis.features, structures)
            analysis.stage_note = note_from_features(analysis.probability,
                                                     operating_point_of(analysis, current_manifest()),
                                                     analysis.features)
            analysis.save(update_fields=["features", "stage_note"])
        audit.record(request=request, user=user, action=AuditEvent.Action.CHANGE, obj=capture,
                     clinic_id=capture.lesion.patient.clinic_id, detail={"structures": structures})
    return capture


def delete_files_of_patient(patient: Patient, **_signal_kwargs: Any) -> list[str]:
    """Remove every stored file of a patient's captures and analyses once the deletion commits
    (a rolled-back deletion keeps its files); returns the names. Answers clinic's patient_deleting."""
    names: list[str] = []
    for capture in Capture.objects.filter(lesion__patient=patient).prefetch_related("analyses"):
        names.extend(f.name for f in (capture.image, capture.thumbnail) if f)
        for analysis in capture.analyses.all():
            names.extend(f.name for f in (analysis.mask, analysis.overlay, analysis.heatmap) if f)
    transaction.on_commit(lambda: [default_storage.delete(name) for name in names])
    return names
