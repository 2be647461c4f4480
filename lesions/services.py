"""Writes for lesions, captures and analyses. Views and Celery tasks stay thin and call these."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
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
from lesions import stage_note
from lesions.evolution import compare
from lesions.images import clean_image_bytes, decode_rgb, encode_png
from lesions.models import Analysis, Capture, Histopathology, Lesion

logger = logging.getLogger("lesions.services")


class TransientAnalysisError(Exception):
    """Storage, database or broker trouble that a retry may cure."""


class BadImageError(Exception):
    """The stored image cannot be analysed; retrying will not help."""


def current_model_version() -> str:
    from ml.inference import read_manifest  # reads JSON only: no TensorFlow in the web process

    return read_manifest(settings.ML_MODELS_DIR)["version"]


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
    stored_name = default_storage.save(f"captures/{_random_name()}.{clean.extension}", ContentFile(clean.content))
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


def _random_name() -> str:
    import uuid

    return uuid.uuid4().hex


def enqueue_analysis(analysis_id: int) -> None:
    from lesions.tasks import analyze_capture_task

    try:
        analyze_capture_task.apply_async((analysis_id,), queue="gpu")
    except Exception:
        # The broker is down: the row stays queued and the periodic sweep enqueues it later.
        logger.exception("enqueue failed analysis_id=%s; the sweep will retry", analysis_id)


def enqueue_thumbnail(capture_id: int) -> None:
    from lesions.tasks import make_thumbnail_task

    try:
        make_thumbnail_task.apply_async((capture_id,), queue="default")
    except Exception:
        # A missing thumbnail only costs the list a smaller picture; the page falls back to the image.
        logger.exception("thumbnail enqueue failed capture_id=%s", capture_id)


def make_thumbnail(capture_id: int, size: int = 256) -> str | None:
    """Light work for the CPU workers (`default` queue): a small PNG for lists. Idempotent."""
    from lesions.images import thumbnail_png

    capture = Capture.objects.filter(pk=capture_id).first()
    if capture is None or capture.thumbnail:
        return capture.thumbnail.name if capture else None
    name = default_storage.save(f"thumbnails/{capture.pk}-{_random_name()[:8]}.png",
                                ContentFile(thumbnail_png(read_capture_bytes(capture), size)))
    updated = Capture.objects.filter(pk=capture_id, thumbnail="").update(thumbnail=name)
    if not updated:  # another delivery won the race
        default_storage.delete(name)
    return name


def _claim(analysis_id: int, worker: str) -> Analysis | None:
    """Mark an analysis running, or return None when there is nothing to do.

    The attempt counter is committed before any model work, so an image that kills the
    worker every time runs out of attempts instead of looping forever.
    """
    with transaction.atomic():
        analysis = Analysis.objects.select_for_update().filter(pk=analysis_id).first()
        if analysis is None or analysis.status == Analysis.Status.DONE:
            return None
        if analysis.attempts >= settings.ANALYSIS_MAX_ATTEMPTS:
            _fail(analysis, f"Gave up after {analysis.attempts} attempts: the worker stopped while analysing "
                            "this image each time.")
            return None
        analysis.status = Analysis.Status.RUNNING
        analysis.attempts += 1
        analysis.started_at = timezone.now()
        analysis.worker = worker
        analysis.error = ""
        analysis.save(update_fields=["status", "attempts", "started_at", "worker", "error"])
        return analysis


def _fail(analysis: Analysis, reason: str) -> None:
    analysis.status = Analysis.Status.FAILED
    analysis.error = reason
    analysis.finished_at = timezone.now()
    analysis.save(update_fields=["status", "error", "finished_at"])
    logger.warning("analysis failed analysis_id=%s capture_id=%s reason=%s", analysis.pk, analysis.capture_id, reason)


def mark_failed(analysis_id: int, reason: str) -> None:
    with transaction.atomic():
        analysis = Analysis.objects.select_for_update().get(pk=analysis_id)
        if analysis.status != Analysis.Status.DONE:
            _fail(analysis, reason)


def mark_queued_for_retry(analysis_id: int, reason: str) -> None:
    """Back to queued for a retry. The attempt is given back: attempts count runs that may
    have crashed the worker, and this one ended cleanly with a transient error."""
    from django.db.models import F

    Analysis.objects.filter(pk=analysis_id, status=Analysis.Status.RUNNING, attempts__gt=0).update(
        status=Analysis.Status.QUEUED, error=f"retrying: {reason}", attempts=F("attempts") - 1)


def read_capture_bytes(capture: Capture) -> bytes:
    try:
        with default_storage.open(capture.image.name, "rb") as handle:
            return handle.read()
    except FileNotFoundError as exc:
        raise BadImageError(f"The stored image is missing ({capture.image.name}).") from exc
    except OSError as exc:
        raise TransientAnalysisError(f"storage read failed: {exc}") from exc


def previous_features(capture: Capture) -> dict | None:
    earlier = (Analysis.objects.filter(capture__lesion_id=capture.lesion_id, status=Analysis.Status.DONE,
                                       capture__taken_at__lt=capture.taken_at)
               .order_by("-capture__taken_at", "-id").values_list("features", flat=True).first())
    return earlier or None


def run_analysis(*, analysis_id: int, analyzer: Any, worker: str) -> Analysis | None:
    """The whole analysis of one capture, run inside a worker. Idempotent: a done analysis is left as is."""
    analysis = _claim(analysis_id, worker)
    if analysis is None:
        return None
    capture = analysis.capture
    log_ids = f"analysis_id={analysis.pk} capture_id={capture.pk}"
    started = time.perf_counter()
    data = read_capture_bytes(capture)
    t_load = time.perf_counter()
    try:
        image = decode_rgb(data)
    except Exception as exc:
        raise BadImageError(f"The stored image cannot be decoded ({exc}).") from exc
    t_decode = time.perf_counter()
    result = analyzer.analyze(image, capture.mm_per_pixel)
    t_model = time.perf_counter()
    features = dict(result.features)
    if features:
        features["tds"] = _tds(features, capture.structures)
        before = previous_features(capture)
        change = compare(before, features, settings.LESION_GROWTH_FLAG_FRACTION) if before else None
        features["change"] = change.as_dict() if change else None
    note = note_from_features(result.probability, operating_point(analyzer.manifest), features)
    stem = f"analyses/{capture.pk}-{analysis.pk}-{_random_name()[:8]}"
    try:
        mask_name = default_storage.save(f"{stem}-mask.png", ContentFile(encode_png(result.mask * 255)))
        overlay_name = default_storage.save(f"{stem}-overlay.png", ContentFile(encode_png(result.overlay)))
        heat_name = (default_storage.save(f"{stem}-heatmap.png", ContentFile(encode_png(result.heatmap)))
                     if result.heatmap is not None else "")
    except OSError as exc:
        raise TransientAnalysisError(f"storage write failed: {exc}") from exc
    t_store = time.perf_counter()
    with transaction.atomic():
        fresh = Analysis.objects.select_for_update().get(pk=analysis.pk)
        if fresh.status == Analysis.Status.DONE:  # another delivery finished first
            for name in (mask_name, overlay_name, heat_name):
                if name:
                    default_storage.delete(name)
            return fresh
        fresh.status = Analysis.Status.DONE
        fresh.finished_at = timezone.now()
        fresh.error = ""
        fresh.device = analyzer.device
        fresh.segmenter_name = f"{analyzer.names[0]} {analyzer.manifest['segmenter']['version']}"
        fresh.classifier_name = f"{analyzer.names[1]} {analyzer.manifest['classifier']['version']}"
        fresh.probability = result.probability
        fresh.threshold = analyzer.threshold
        fresh.mask, fresh.overlay, fresh.heatmap = mask_name, overlay_name, heat_name
        fresh.features = features
        fresh.stage_note = note
        fresh.timings = {
            "queue_wait_s": max(0.0, (fresh.started_at - fresh.queued_at).total_seconds()) if fresh.started_at else None,
            "image_load_s": t_load - started, "decode_s": t_decode - t_load,
            **{k: v for k, v in result.timings.items()},
            "model_total_s": t_model - t_decode, "storage_write_s": t_store - t_model,
            "total_s": time.perf_counter() - started,
        }
        fresh.save()
    logger.info("analysis done %s probability=%.3f total_s=%.3f", log_ids, result.probability,
                fresh.timings["total_s"])
    return fresh


def operating_point(manifest: dict) -> stage_note.ModelOperatingPoint:
    cls = manifest["classifier"]
    test = cls.get("test_metrics") or {}
    return stage_note.ModelOperatingPoint(threshold=float(cls["threshold"]), sensitivity=test.get("sensitivity"),
                                          specificity=test.get("specificity"))


def note_from_features(probability: float, point: stage_note.ModelOperatingPoint, features: dict) -> str:
    """The image note of one analysis from its stored features (TDS and change included)."""
    tds = features.get("tds") or {}
    change = features.get("change") or {}
    return stage_note.image_note(probability=probability, operating_point=point, tds=tds.get("score"),
                                 tds_band=tds.get("band"), change=_change_summary(change),
                                 growing=bool(change.get("growing")))


def _tds(features: dict, structures: list[str]) -> dict | None:
    """The Total Dermoscopy Score needs the clinician's D (structures); without it there is none."""
    from ml.features import tds_band, total_dermoscopy_score

    if not structures:
        return None
    a = features["asymmetry"]["axes_asymmetric"]
    b = features["border"]["abrupt_segments"]
    c = features["colours"]["count"]
    d = len(structures)
    score = total_dermoscopy_score(a, b, c, d)
    return {"a": a, "b": b, "c": c, "d": d, "score": score, "band": tds_band(score)}


def _change_summary(change: dict | None) -> str | None:
    if not change:
        return None
    from lesions.evolution import Change

    return Change(**change).summary()


def requeue_stuck_analyses(*, now: datetime | None = None) -> list[int]:
    """Re-enqueue analyses stuck in queued/running past the deadline (for example after a
    broker lost its queue or a worker died). Rows out of attempts are failed instead."""
    now = now or timezone.now()
    deadline = now - timedelta(seconds=settings.ANALYSIS_STUCK_AFTER_SECONDS)
    stuck = list(Analysis.objects.filter(status__in=[Analysis.Status.QUEUED, Analysis.Status.RUNNING])
                 .filter(queued_at__lt=deadline)
                 .exclude(status=Analysis.Status.RUNNING, started_at__gte=deadline)
                 .values_list("pk", "attempts"))
    requeued = []
    for pk, attempts in stuck:
        if attempts >= settings.ANALYSIS_MAX_ATTEMPTS:
            mark_failed(pk, f"Gave up after {attempts} attempts.")
            continue
        Analysis.objects.filter(pk=pk).update(status=Analysis.Status.QUEUED, queued_at=now)
        enqueue_analysis(pk)
        requeued.append(pk)
    if requeued:
        logger.info("requeued stuck analyses ids=%s", requeued)
    return requeued


def reanalyze(*, captures, model_version: str | None = None) -> list[int]:
    """Queue a fresh analysis of each capture with the current (or given) model version."""
    version = model_version or current_model_version()
    queued = []
    for capture in captures:
        with transaction.atomic():
            analysis, created = Analysis.objects.get_or_create(capture=capture, model_version=version)
            if not created and analysis.status in (Analysis.Status.QUEUED, Analysis.Status.RUNNING):
                continue
            if not created:
                analysis.status, analysis.attempts, analysis.error = Analysis.Status.QUEUED, 0, ""
                analysis.queued_at = timezone.now()
                analysis.save(update_fields=["status", "attempts", "error", "queued_at"])
            transaction.on_commit(lambda pk=analysis.pk: enqueue_analysis(pk))
            queued.append(analysis.pk)
    return queued


def delete_files_of_patient(patient: Patient) -> list[str]:
    """Remove every stored file of a patient's captures and analyses; returns the names removed."""
    names: list[str] = []
    for capture in Capture.objects.filter(lesion__patient=patient).prefetch_related("analyses"):
        names.extend(f.name for f in (capture.image, capture.thumbnail) if f)
        for analysis in capture.analyses.all():
            names.extend(f.name for f in (analysis.mask, analysis.overlay, analysis.heatmap) if f)
    for name in names:
        default_storage.delete(name)
    return names


def validate_structures(values: list[str]) -> list[str]:
    from lesions.forms import DERMOSCOPIC_STRUCTURES

    allowed = dict(DERMOSCOPIC_STRUCTURES)
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValidationError(f"Unknown structures: {', '.join(unknown)}")
    return values


def capture_set_structures(*, request: HttpRequest | None, user: Any, capture: Capture,
                           structures: list[str]) -> Capture:
    """Record the clinician's dermoscopic structures and refresh the TDS and note of done analyses."""
    from ml.inference import read_manifest

    validate_structures(structures)
    with transaction.atomic():
        capture.structures = structures
        capture.save(update_fields=["structures"])
        manifest = read_manifest(settings.ML_MODELS_DIR)
        for analysis in capture.analyses.select_for_update().filter(status=Analysis.Status.DONE):
            if not analysis.features:
                continue
            analysis.features["tds"] = _tds(analysis.features, structures)
            point = operating_point(manifest)
            if analysis.threshold is not None:  # the threshold of the model version that ran
                point = stage_note.ModelOperatingPoint(analysis.threshold, point.sensitivity, point.specificity)
            analysis.stage_note = note_from_features(analysis.probability, point, analysis.features)
            analysis.save(update_fields=["features", "stage_note"])
        audit.record(request=request, user=user, action=AuditEvent.Action.CHANGE, obj=capture,
                     clinic_id=capture.lesion.patient.clinic_id, detail={"structures": structures})
    return capture
