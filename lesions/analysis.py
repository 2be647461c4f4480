"""The analysis state machine and pipeline, run inside workers: claim, analyse, store, finish;
retries, failures and the sweep that recovers stranded rows."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from lesions.images import decode_rgb, encode_png, thumbnail_png
from lesions.models import Analysis, Capture
from lesions.notes import change_between, note_from_features, point_with_calibration, tds_record
from lesions.queueing import enqueue_analysis_or_flag, enqueue_thumbnail
from lesions.storage_names import random_name
from lesions.stored_files import delete_quietly, save_new_file

logger = logging.getLogger("lesions.analysis")
SWEEP_BATCH = 500  # rows per sweep pass: a long outage is worked off over a few passes


class TransientAnalysisError(Exception):
    """Storage, database or broker trouble that a retry may cure."""


class BadImageError(Exception):
    """The stored image cannot be analysed; retrying will not help."""


def make_thumbnail(capture_id: int, size: int = 256) -> str | None:
    """Light work for the CPU workers (`default` queue): a small PNG for lists. Idempotent.

    A storage failure raises TransientAnalysisError (the task retries, the sweep catches the
    rest); an image that cannot be read is recorded on the capture so the sweep stops asking."""
    capture = Capture.objects.filter(pk=capture_id).first()
    if capture is None or capture.thumbnail:
        return capture.thumbnail.name if capture else None
    try:
        png = thumbnail_png(read_capture_bytes(capture), size)
    except BadImageError as exc:
        Capture.objects.filter(pk=capture_id, thumbnail="").update(thumbnail_error=str(exc)[:200])
        raise
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow's errors for undecodable bytes
        Capture.objects.filter(pk=capture_id, thumbnail="").update(thumbnail_error=f"cannot be decoded ({exc})"[:200])
        raise BadImageError(f"The stored image cannot be decoded ({exc}).") from exc
    try:
        name = save_new_file(f"thumbnails/{capture.pk}-{random_name()[:8]}.png", png)
    except Exception as exc:
        raise TransientAnalysisError(f"thumbnail write failed: {exc}") from exc
    try:
        updated = Capture.objects.filter(pk=capture_id, thumbnail="").update(thumbnail=name)
    except BaseException:
        delete_quietly(name)
        raise
    if not updated:  # another delivery won the race
        delete_quietly(name)
    return name


def _claim(analysis_id: int, worker: str) -> Analysis | None:
    """Mark an analysis running, or return None when there is nothing to do.

    The attempt counter is committed before any model work, so an image that kills the
    worker every time runs out of attempts instead of looping forever.
    """
    with transaction.atomic():
        analysis = Analysis.objects.select_for_update().filter(pk=analysis_id).first()
        if analysis is None or analysis.status in (Analysis.Status.DONE, Analysis.Status.NOT_ANALYSABLE):
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
        if not analysis.is_finished:
            _fail(analysis, reason)


def mark_not_analysable(analysis: Analysis, reason: str) -> Analysis:
    """The image is stored but is not a plausible skin-lesion capture: no score, no outputs,
    and (having no done status) it never feeds the growth comparison of later captures."""
    with transaction.atomic():
        fresh = Analysis.objects.select_for_update().get(pk=analysis.pk)
        if fresh.is_finished:  # another delivery finished first
            return fresh
        fresh.status = Analysis.Status.NOT_ANALYSABLE
        fresh.error = reason
        fresh.finished_at = timezone.now()
        fresh.probability = None
        fresh.save(update_fields=["status", "error", "finished_at", "probability"])
    logger.info("analysis refused analysis_id=%s capture_id=%s reason=%s", fresh.pk, fresh.capture_id, reason)
    return fresh


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


def previous_features(capture: Capture) -> tuple[dict, str] | None:
    """The features and modality of the lesion's newest earlier analysed capture."""
    earlier = (Analysis.objects.filter(capture__lesion_id=capture.lesion_id, status=Analysis.Status.DONE,
                                       capture__taken_at__lt=capture.taken_at)
               .order_by("-capture__taken_at", "-id").values_list("features", "capture__modality").first())
    return (earlier[0], earlier[1]) if earlier and earlier[0] else None


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
    from ml import plausibility  # noqa: PLC0415 - numpy, loaded in workers only (web imports this module)

    refusal = plausibility.image_refusal(image)
    if refusal:
        return mark_not_analysable(analysis, refusal)
    result = analyzer.analyze(image, capture.mm_per_pixel)
    t_model = time.perf_counter()
    refusal = plausibility.mask_refusal(result.mask)
    if refusal:
        return mark_not_analysable(analysis, refusal)
    features = dict(result.features)
    if features:
        features["tds"] = tds_record(features, capture.structures, modality=capture.modality,
                                     melanocytic=capture.melanocytic)
        before = previous_features(capture)
        change = (change_between(before[0], features, before_modality=before[1], after_modality=capture.modality,
                                 manifest=analyzer.model_manifest) if before else None)
        features["change"] = change.as_dict() if change else None
        # Framing half of the image-quality check: needs the outline, so it runs here.
        from ml.quality import check_framing  # noqa: PLC0415 -- numpy/scipy: keep lesions.tasks light in web imports

        features["framing"] = check_framing(result.mask).as_dict()
    point = point_with_calibration(analyzer.model_manifest)  # of the models this worker loaded
    note = note_from_features(result.probability, point, features)
    t_findings = time.perf_counter()
    stem = f"analyses/{capture.pk}-{analysis.pk}-{random_name()[:8]}"
    outputs = {"mask": encode_png(result.mask * 255), "overlay": encode_png(result.overlay)}
    if result.heatmap is not None:
        outputs["heatmap"] = encode_png(result.heatmap)
    written: dict[str, str] = {}
    try:
        for kind, content in outputs.items():
            written[kind] = save_new_file(f"{stem}-{kind}.png", content)
    except Exception as exc:
        delete_quietly(*written.values())  # all three or none
        raise TransientAnalysisError(f"storage write failed: {exc}") from exc
    mask_name, overlay_name, heat_name = written["mask"], written["overlay"], written.get("heatmap", "")
    t_store = time.perf_counter()
    try:
        with transaction.atomic():
            fresh = Analysis.objects.select_for_update().get(pk=analysis.pk)
            if fresh.is_finished:  # another delivery finished first
                delete_quietly(mask_name, overlay_name, heat_name)
                return fresh
            fresh.status = Analysis.Status.DONE
            fresh.finished_at = timezone.now()
            fresh.error = ""
            fresh.device = analyzer.device_description
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
                "model_total_s": t_model - t_decode,
                # Apart, so that the storage figure is the outputs' encoding and writes alone: the
                # findings (outline check, TDS, change since the last capture with its database
                # read, framing, operating point, note) used to be counted in it.
                "findings_s": t_findings - t_model,
                "storage_write_s": t_store - t_findings,
                "total_s": time.perf_counter() - started,
            }
            fresh.save()
    except BaseException:
        # The row does not point at them: remove the outputs of a commit that failed.
        delete_quietly(mask_name, overlay_name, heat_name)
        raise
    logger.info("analysis done %s probability=%.3f total_s=%.3f", log_ids, result.probability,
                fresh.timings["total_s"])
    return fresh


def _stuck(deadline: datetime) -> Q:
    """Queued or running since before the deadline, and not (re)started since."""
    return (Q(status__in=Analysis.PENDING, queued_at__lt=deadline)
            & ~Q(status=Analysis.Status.RUNNING, started_at__gte=deadline))


def stuck_analysis_ids(deadline: datetime) -> list[int]:
    """Candidates for the sweep; each is checked again under its row lock before it is touched."""
    waiting = Q(status=Analysis.Status.QUEUED, awaiting_broker=True)
    return list(Analysis.objects.filter(_stuck(deadline) | waiting).order_by("queued_at", "id")
                .values_list("pk", flat=True)[:SWEEP_BATCH])


def _requeue_if_still_stuck(analysis_id: int, deadline: datetime, now: datetime) -> bool:
    """The sweep's write. The status is checked again under the row lock: between the sweep's
    read and this write a worker may have finished the analysis, and a done row must never
    go back to queued (it would be analysed twice)."""
    waiting = Q(status=Analysis.Status.QUEUED, awaiting_broker=True)
    with transaction.atomic():
        analysis = (Analysis.objects.select_for_update().filter(_stuck(deadline) | waiting, pk=analysis_id)
                    .first())
        if analysis is None:
            logger.info("sweep skipped analysis_id=%s: it moved on since it was selected", analysis_id)
            return False
        if analysis.attempts >= settings.ANALYSIS_MAX_ATTEMPTS:
            _fail(analysis, f"Gave up after {analysis.attempts} attempts.")
            return False
        analysis.status = Analysis.Status.QUEUED
        analysis.queued_at = now
        analysis.save(update_fields=["status", "queued_at"])
    return True


def requeue_stuck_analyses(*, now: datetime | None = None) -> list[int]:
    """Re-enqueue analyses stuck in queued/running past the deadline (for example after a
    broker lost its queue or a worker died) and queued rows the broker never took (it was
    down at upload). Rows out of attempts are failed instead."""
    now = now or timezone.now()
    deadline = now - timedelta(seconds=settings.ANALYSIS_STUCK_AFTER_SECONDS)
    requeued = []
    for pk in stuck_analysis_ids(deadline):
        if _requeue_if_still_stuck(pk, deadline, now) and enqueue_analysis_or_flag(pk):
            requeued.append(pk)
    if requeued:
        logger.info("requeued stuck analyses ids=%s", requeued)
    return requeued


def requeue_missing_thumbnails(*, now: datetime | None = None) -> list[int]:
    """Enqueue the thumbnail of every capture that has none a while after upload (its task
    was never sent, or gave up). Captures whose image cannot be read are left alone."""
    now = now or timezone.now()
    deadline = now - timedelta(seconds=settings.THUMBNAIL_STUCK_AFTER_SECONDS)
    ids = list(Capture.objects.filter(thumbnail="", thumbnail_error="", created_at__lt=deadline)
               .order_by("id").values_list("pk", flat=True)[:SWEEP_BATCH])
    sent = [pk for pk in ids if enqueue_thumbnail(pk)]
    if sent:
        logger.info("requeued missing thumbnails capture_ids=%s", sent)
    return sent
