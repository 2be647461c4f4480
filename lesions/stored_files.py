"""Writing and removing stored files so that a failure leaves nothing behind.

Every file the app writes gets a fresh random name (lesions.storage_names), so a failed save
can delete exactly the name it asked for: nobody else can own that name. Django's
FileSystemStorage writes in place (a write that fails part-way leaves a truncated file under
the final name) and S3 may keep an object whose row never commits; both are cleaned here.
A process killed mid-write runs no handler at all: the orphan reconciler
(lesions.orphans) removes what such a crash leaves once it is older than its grace period.
"""

from __future__ import annotations

import logging

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

logger = logging.getLogger("lesions.stored_files")


def save_new_file(name: str, content: bytes) -> str:
    """Store `content` under the new (random) `name`; on any failure, remove what was written and re-raise."""
    try:
        return default_storage.save(name, ContentFile(content))
    except BaseException:
        delete_quietly(name)
        raise


def delete_quietly(*names: str) -> None:
    """Best-effort removal during clean-up: a failure is logged, and the reconciler finds the file later."""
    for name in names:
        if not name:
            continue
        try:
            default_storage.delete(name)
        except Exception:
            logger.warning("could not remove %s during clean-up; the orphan reconciler will", name, exc_info=True)
