"""Putting work on the broker. Tasks are sent by name, so nothing here imports the task
module (and the task module imports nothing from the web side)."""

from __future__ import annotations

import logging

from celery import current_app

logger = logging.getLogger("lesions.queueing")

ANALYZE_TASK = "lesions.tasks.analyze_capture_task"
THUMBNAIL_TASK = "lesions.tasks.make_thumbnail_task"
# Model work goes to the workers that loaded the models; light work (thumbnails, the sweep) to the rest.
ANALYSIS_QUEUE = "gpu"
LIGHT_QUEUE = "default"


def enqueue_analysis(analysis_id: int) -> None:
    try:
        current_app.send_task(ANALYZE_TASK, (analysis_id,), queue=ANALYSIS_QUEUE)
    except Exception:
        # The broker is down: the row stays queued and the periodic sweep enqueues it later.
        logger.exception("enqueue failed analysis_id=%s; the sweep will retry", analysis_id)


def enqueue_thumbnail(capture_id: int) -> None:
    try:
        current_app.send_task(THUMBNAIL_TASK, (capture_id,), queue=LIGHT_QUEUE)
    except Exception:
        # A missing thumbnail only costs the list a smaller picture; the page falls back to the image.
        logger.exception("thumbnail enqueue failed capture_id=%s", capture_id)
