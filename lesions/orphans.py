"""The orphan reconciler: stored files that no row names, and rows whose file is gone.

A file is written before its row commits (captures), or before the final commit (analysis
outputs), so a process killed in between leaves a file nobody points at. Clean-up handlers
catch every failure that raises; this catches the rest: it lists storage against the
database and removes files older than ORPHAN_GRACE_SECONDS that no row names. Younger files
may belong to a write whose row is about to commit, so they are left alone. Rows whose
file is missing are reported, never changed: that needs a person (the file is lost).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone

from lesions.models import Analysis, Capture
from lesions.stored_files import delete_quietly

logger = logging.getLogger("lesions.orphans")

# Folders the app writes to, and the probe folder of the health check.
STORED_FOLDERS = ("captures", "thumbnails", "analyses", "healthz")


@dataclass
class Reconciliation:
    orphan_files: list[str] = field(default_factory=list)  # old enough: removed (unless a dry run)
    young_unreferenced: list[str] = field(default_factory=list)  # inside the grace period: kept
    rows_missing_files: list[str] = field(default_factory=list)  # reported only


def referenced_names() -> set[str]:
    names: set[str] = set()
    for image, thumbnail in Capture.objects.values_list("image", "thumbnail").iterator(chunk_size=5000):
        names.update((image, thumbnail))
    for row in Analysis.objects.values_list("mask", "overlay", "heatmap").iterator(chunk_size=5000):
        names.update(row)
    names.discard("")
    return names


def stored_names(folder: str) -> list[str]:
    """Every file under a folder, recursively (S3 and local storage both answer listdir)."""
    try:
        subfolders, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return []
    names = [f"{folder}/{name}" for name in files]
    for sub in subfolders:
        names.extend(stored_names(f"{folder}/{sub}"))
    return names


def reconcile(*, now: datetime | None = None, grace_seconds: int | None = None, remove: bool = True,
              check_rows: bool = False) -> Reconciliation:
    """Remove (or, with remove=False, only list) unreferenced files older than the grace period."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.ORPHAN_GRACE_SECONDS if grace_seconds is None else grace_seconds)
    referenced = referenced_names()
    result = Reconciliation()
    for folder in STORED_FOLDERS:
        for name in stored_names(folder):
            if name in referenced:
                continue
            try:
                modified = default_storage.get_modified_time(name)
            except FileNotFoundError:
                continue  # removed meanwhile
            if now - modified < grace:
                result.young_unreferenced.append(name)
                continue
            result.orphan_files.append(name)
    if remove and result.orphan_files:
        delete_quietly(*result.orphan_files)
        logger.warning("removed %d orphan file(s): %s", len(result.orphan_files), result.orphan_files[:50])
    if check_rows:
        result.rows_missing_files = sorted(name for name in referenced if not default_storage.exists(name))
        if result.rows_missing_files:
            logger.error("%d row(s) name a missing file: %s", len(result.rows_missing_files),
                         result.rows_missing_files[:50])
    return result


def remove_orphan_files() -> list[str]:
    """The beat task's pass: remove old orphans (rows are not checked file by file: that is slow on S3)."""
    return reconcile().orphan_files
