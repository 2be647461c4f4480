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
from lesions.images import clean_image_bytes, reduced_rgb
from lesions.models import Analysis, Capture, Histopathology, Lesion
from lesions.notes import note_from_features, operating_point_of, tds_record
from lesions.queueing import enqueue_analysis, enqueue_thumbnail
from lesions.recalls import DEFAULT_INTERVAL, next_review_date
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


def lesion_update(*, request: HttpRequest | None, user: Any, lesion: Lesion, changed: list[str],
                  follow_up: str = "") -> Lesion:
    """Save a lesion's changed fields. Deciding "monitor" without a review date books one
    (`follow_up` names the interval, default short-term monitoring: lesions/recalls.py)."""
    with transaction.atomic():
        if {"clinical_diagnosis", "decision", "next_review_date"} & set(changed):
            lesion.assessed_by, lesion.assessed_at = user, timezone.now()
        date_typed = "next_review_date" in changed
        if lesion.decision == Lesion.Decision.MONITOR and not date_typed and (
                lesion.next_review_date is None or follow_up):
            lesion.next_review_date = next_review_date(timezone.localdate(), follow_up or DEFAULT_INTERVAL)
            changed = [*changed, "next_review_date"]
        elif "decision" in changed and lesion.decision != Lesion.Decision.MONITOR and not date_typed:
            # A recall belongs to monitoring; reassurance or excision ends it unless a date is typed.
            lesion.next_review_date = None
            changed = [*changed, "next_review_date"]
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
    quality = capture_quality(clean.content)
    if mm_per_pixel is None and field_of_view_mm:
        mm_per_pixel = field_of_view_mm / clean.width
    elif mm_per_pixel is not None:
        mm_per_pixel *= clean.downscale  # given for the original; a stored pixel spans `downscale` of them
    stored_name = default_storage.save(f"captures/{random_name()}.{clean.extension}", ContentFile(clean.content))
    try:
        with transaction.atomic():
            capture = Capture.objects.create(
                lesion=lesion, image=stored_name, width=clean.width, height=clean.height, sha256=clean.sha256,
                original_filename=filename[:200], modality=modality, source=source, device=device[:120],
                mm_per_pixel=mm_per_pixel, taken_at=taken_at or timezone.now(), taken_by=user, quality=quality)
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


def capture_quality(content: bytes) -> dict:
    """Blur and exposure of a cleaned image (ml/quality.py). The check never blocks a capture: a
    poor image is stored and analysed, marked with the reason; if the check itself fails, the
    capture is stored unmarked and the failure logged."""
    from ml import quality  # noqa: PLC0415 -- numpy/scipy only when a capture is stored, not at web start

    try:
        return quality.check_image(reduced_rgb(content)).as_dict()
    except Exception:
        logger.exception("image-quality check failed; capture stored without it")
        return {}


def analysis_retry(*, request: HttpRequest | None, user: Any, analysis: Analysis) -> list[int]:
    """A clinician asks for a failed analysis to run again (with the current model version)."""
    if analysis.status != Analysis.Status.FAILED:
        return []
    queued = reanalyze(captures=[analysis.capture])
    audit.record(request=request, user=user, action=AuditEvent.Action.CHANGE, obj=analysis,
                 clinic_id=analysis.capture.lesion.patient.clinic_id, detail={"retry": queued})
    return queued


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


def _file_names(captures) -> list[str]:
    names: list[str] = []
    for capture in captures.prefetch_related("analyses"):
        names.extend(f.name for f in (capture.image, capture.thumbnail) if f)
        for analysis in capture.analyses.all():
            names.extend(analysis_file_names(analysis))
    return names


def analysis_file_names(analysis: Analysis) -> list[str]:
    return [f.name for f in (analysis.mask, analysis.overlay, analysis.heatmap) if f]


def delete_files_on_commit(names: list[str]) -> None:
    """Remove stored files once the deletion that owned them commits (a rolled-back deletion
    keeps its files). Must be called inside that deletion's transaction."""
    transaction.on_commit(lambda: [default_storage.delete(name) for name in names])


def delete_files_of_patient(patient: Patient, **_signal_kwargs: Any) -> list[str]:
    """Remove every stored file of a patient's captures and analyses once the deletion commits;
    returns the names. Answers clinic's patient_deleting."""
    names = _file_names(Capture.objects.filter(lesion__patient=patient))
    delete_files_on_commit(names)
    return names


def lesion_delete(*, request: HttpRequest | None, user: Any, lesion: Lesion) -> None:
    """Delete a lesion with its captures, analyses and their stored files (after commit)."""
    with transaction.atomic():
        names = _file_names(Capture.objects.filter(lesion=lesion))
        audit.record(request=request, user=user, action=AuditEvent.Action.DELETE, obj=lesion,
                     clinic_id=lesion.patient.clinic_id, detail={"files_removed": len(names)})
        delete_files_on_commit(names)
        lesion.delete()


def capture_delete(*, request: HttpRequest | None, user: Any, capture: Capture) -> None:
    """Delete a capture with its analyses and their stored files (after commit)."""
    with transaction.atomic():
        names = _file_names(Capture.objects.filter(pk=capture.pk))
        audit.record(request=request, user=user, action=AuditEvent.Action.DELETE, obj=capture,
                     clinic_id=capture.lesion.patient.clinic_id, detail={"files_removed": len(names)})
        delete_files_on_commit(names)
        capture.delete()


def analysis_delete(*, request: HttpRequest | None, user: Any, analysis: Analysis) -> None:
    """Delete one analysis and its mask, overlay and heat map (after commit)."""
    with transaction.atomic():
        names = analysis_file_names(analysis)
        audit.record(request=request, user=user, action=AuditEvent.Action.DELETE, obj=analysis,
                     clinic_id=analysis.capture.lesion.patient.clinic_id, detail={"files_removed": len(names)})
        delete_files_on_commit(names)
        analysis.delete()
