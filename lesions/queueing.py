"""Putting work on the broker. Tasks are sent by name, so nothing here imports the task
module (and the task module imports nothing from the web side).

Each enqueue says whether the broker took the job. A failure loses nothing: the row stays
queued (or the capture stays without a thumbnail) and the periodic sweep enqueues it again.
"""

from __future__ import annotations

import logging

from celery import current_app

from lesions.models import Analysis

logger = logging.getLogger("lesions.queueing")

ANALYZE_TASK = "lesions.tasks.analyze_capture_task"
THUMBNAIL_TASK = "lesions.tasks.make_thumbnail_task"
# A web request must not hang on a dead broker: give up publishing after about a second.
PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}
# Model work goes to the workers that loaded the models; light work (thumbnails, the sweep) to the rest.
ANALYSIS_QUEUE = "gpu"
LIGHT_QUEUE = "default"


def _send(task: str, args: tuple, queue: str) -> bool:
    try:
        current_app.send_task(task, args, queue=queue, retry=True, retry_policy=PUBLISH_RETRY_POLICY)
        return True
    except Exception:
        logger.exception("enqueue failed task=%s args=%s; the sweep will enqueue it when the broker is back",
                         task, args)
        return False


def enqueue_analysis(analysis_id: int) -> bool:
    return _send(ANALYZE_TASK, (analysis_id,), ANALYSIS_QUEUE)


def enqueue_thumbnail(capture_id: int) -> bool:
    return _send(THUMBNAIL_TASK, (capture_id,), LIGHT_QUEUE)


def enqueue_analysis_or_flag(analysis_id: int) -> bool:
    """Enqueue, and keep the answer on the row: a queued row the broker did not take is
    flagged `awaiting_broker`, so the next sweep pass (not the stuck deadline) sends it."""
    sent = enqueue_analysis(analysis_id)
    try:
        Analysis.objects.filter(pk=analysis_id, awaiting_broker=sent).update(awaiting_broker=not sent)
    except Exception:
        # The database failed right after the row committed: the stuck deadline still catches it.
        logger.exception("could not record the enqueue outcome analysis_id=%s", analysis_id)
    return sent
