"""The analysis state machine and pipeline, run inside workers: claim, analyse, store, finish;
retries, failures and the sweep that recovers stranded rows."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from lesions.evolution import compare
from lesions.images import decode_rgb, encode_png, thumbnail_png
from lesions.models import Analysis, Capture
from lesions.notes import note_from_features, tds_record
from lesions.queueing import enqueue_analysis
from lesions.storage_names import random_name

logger = logging.getLogger("lesions.analysis")


class TransientAnalysisError(Exception):
    """Storage, database or broker trouble that a retry may cure."""


class BadImageError(Exception):
    """The stored image cannot be analysed; retrying will not help."""


def make_thumbnail(capture_id: int, size: int = 256) -> str | None:
    """Light work for the CPU workers (`default` queue): a small PNG for lists. Idempotent."""
    capture = Capture.objects.filter(pk=capture_id).first()
    if capture is None or capture.thumbnail:
        return capture.thumbnail.name if capture else None
    name = default_storage.save(f"thumbnails/{capture.pk}-{random_name()[:8]}.png",
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


def embedding_bytes(vector: Any) -> bytes:
    """A numpy vector as little-endian float32 bytes (no numpy import here: see the web-process test)."""
    return vector.astype("<f4").tobytes()


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
        features["tds"] = tds_record(features, capture.structures)
        before = previous_features(capture)
        change = compare(before, features, settings.LESION_GROWTH_FLAG_FRACTION) if before else None
        features["change"] = change.as_dict() if change else None
        # Framing half of the image-quality check: needs the outline, so it runs here.
        from ml.quality import check_framing  # noqa: PLC0415 -- numpy/scipy: keep lesions.tasks light in web imports

        features["framing"] = check_framing(result.mask).as_dict()
    point = analyzer.model_manifest.operating_point()  # of the models this worker loaded
    note = note_from_features(result.probability, point, features)
    stem = f"analyses/{capture.pk}-{analysis.pk}-{random_name()[:8]}"
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
        fresh.segmenter_name = f"{analyzer.names[0]} {analyzer.model_manifest.segmenter.version}"
        fresh.classifier_name = f"{analyzer.names[1]} {analyzer.model_manifest.classifier.version}"
        fresh.probability = result.probability
        fresh.threshold = point.threshold
        fresh.operating_point = point.as_dict()
        fresh.mask, fresh.overlay, fresh.heatmap = mask_name, overlay_name, heat_name
        fresh.features = features
        fresh.stage_note = note
        embedding = getattr(result, "embedding", None)
        fresh.embedding = embedding_bytes(embedding) if embedding is not None else None
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


def requeue_stuck_analyses(*, now: datetime | None = None) -> list[int]:
    """Re-enqueue analyses stuck in queued/running past the deadline (for example after a
    broker lost its queue or a worker died). Rows out of attempts are failed instead."""
    now = now or timezone.now()
    deadline = now - timedelta(seconds=settings.ANALYSIS_STUCK_AFTER_SECONDS)
    stuck = list(Analysis.objects.filter(status__in=Analysis.PENDING)
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
