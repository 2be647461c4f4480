"""Similar confirmed cases: the captures of the same clinic, with a confirmed diagnosis, whose
classifier embeddings are nearest to a capture's (cosine similarity). An aid to the eye that
shows what comparable lesions turned out to be; not a diagnosis.

Confirmed = the lesion has histopathology recorded, or a clinician's diagnosis. Embeddings are
compared only within one clinic and one model version (another version's embedding space is a
different space). Search is exact, in numpy, over a per-clinic matrix kept in the process and
rebuilt when older than SIMILAR_INDEX_MAX_AGE_S; bench/similar_search.py measures it at 200,000
captures. (pgvector is not available on our PostgreSQL: `pg_available_extensions` has no 'vector'.)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef, Q

from lesions.models import Analysis, Capture, Histopathology, Lesion


@dataclass(frozen=True)
class SimilarCase:
    capture_id: int
    lesion_id: int
    lesion_label: str
    diagnosis: str
    confirmed_by: str  # "histopathology" or "clinician"
    similarity: float


@dataclass
class ClinicIndex:
    """Unit-length embeddings of one clinic's confirmed captures (one row each)."""

    capture_ids: np.ndarray  # int64, N
    lesion_ids: np.ndarray  # int64, N
    matrix: np.ndarray  # float32, N × D
    built_at: float = 0.0

    def search(self, query: np.ndarray, *, k: int, exclude_lesion: int | None = None) -> list[tuple[int, float]]:
        """The k nearest rows as (row, cosine similarity), nearest first."""
        if not len(self.capture_ids):
            return []
        scores = self.matrix @ query.astype(np.float32)
        if exclude_lesion is not None:
            scores[self.lesion_ids == exclude_lesion] = -np.inf
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(int(row), float(scores[row])) for row in top if np.isfinite(scores[row])]


def vector_from(data: bytes | memoryview | None) -> np.ndarray | None:
    if not data:
        return None
    return np.frombuffer(bytes(data), dtype="<f4")


def confirmed_lesions_q() -> Q:
    return Q(Exists(Histopathology.objects.filter(lesion=OuterRef("capture__lesion")))) | ~Q(
        capture__lesion__clinical_diagnosis="")


def build_index(clinic_id: int, model_version: str) -> ClinicIndex:
    rows = (Analysis.objects.filter(capture__lesion__patient__clinic_id=clinic_id, model_version=model_version,
                                    status=Analysis.Status.DONE, embedding__isnull=False)
            .filter(confirmed_lesions_q())
            .values_list("capture_id", "capture__lesion_id", "embedding").iterator(chunk_size=5000))
    capture_ids, lesion_ids, vectors = [], [], []
    for capture_id, lesion_id, data in rows:
        capture_ids.append(capture_id)
        lesion_ids.append(lesion_id)
        vectors.append(vector_from(data))
    matrix = np.vstack(vectors).astype(np.float32) if vectors else np.zeros((0, 0), np.float32)
    return ClinicIndex(np.asarray(capture_ids, np.int64), np.asarray(lesion_ids, np.int64), matrix, time.monotonic())


_indexes: dict[tuple[int, str], ClinicIndex] = {}
_rebuilding: set[tuple[int, str]] = set()
_lock = threading.Lock()
# Advanced whenever an index is built, rebuilt or forgotten: a cached case page
# (lesions.presentation.case_body_html) shows the similar cases of the index it was built with,
# and an index can change without any write to the clinic (a rebuild that catches up).
index_epoch = 0


def _store(key: tuple[int, str], index: ClinicIndex) -> ClinicIndex:
    global index_epoch  # noqa: PLW0603 - one counter per process, read by the page cache
    with _lock:
        _indexes[key] = index
        index_epoch += 1
    return index


def index_for(clinic_id: int, model_version: str) -> ClinicIndex:
    """The clinic's index: built on first use; once older than SIMILAR_INDEX_MAX_AGE_S it is
    rebuilt in a background thread while the old one keeps answering (a rebuild reads every
    confirmed embedding of the clinic, too slow to make a page wait for)."""
    key = (clinic_id, model_version)
    index = _indexes.get(key)
    if index is None:
        index = _store(key, build_index(clinic_id, model_version))
    elif time.monotonic() - index.built_at > settings.SIMILAR_INDEX_MAX_AGE_S:
        with _lock:
            start = key not in _rebuilding
            _rebuilding.add(key)
        if start:
            threading.Thread(target=_rebuild, args=(key,), daemon=True, name=f"similar-index-{clinic_id}").start()
    return index


def _rebuild(key: tuple[int, str]) -> None:
    try:
        _store(key, build_index(*key))
    finally:
        with _lock:
            _rebuilding.discard(key)
        connection.close()  # this thread's own connection


def forget_indexes() -> None:
    global index_epoch  # noqa: PLW0603 - as in _store
    with _lock:
        _indexes.clear()
        index_epoch += 1


def diagnosis_of(lesion: Lesion) -> tuple[str, str]:
    """What the lesion was confirmed as, and by whom (the pathology report wins)."""
    histo = getattr(lesion, "histopathology", None)  # a missing one-to-one raises AttributeError
    if histo is not None:
        detail = "in situ" if histo.in_situ else (f"Breslow {histo.breslow_mm} mm" if histo.breslow_mm is not None
                                                  else "invasive")
        return f"Melanoma ({detail})", "histopathology"
    return lesion.clinical_diagnosis, "clinician"


def similar_confirmed_cases(capture: Capture, analysis: Analysis | None = None, *, k: int = 4) -> list[SimilarCase]:
    """The k captures of the capture's clinic with a confirmed diagnosis nearest to it, other
    lesions only; empty until the capture has an analysed embedding."""
    if analysis is None:
        analysis = (capture.analyses.filter(status=Analysis.Status.DONE, embedding__isnull=False)
                    .order_by("-finished_at", "-id").first())
    query = vector_from(analysis.embedding) if analysis else None
    if query is None:
        return []
    index = index_for(capture.lesion.patient.clinic_id, analysis.model_version)
    if index.matrix.shape[1:] != query.shape:
        return []
    hits = index.search(query, k=k, exclude_lesion=capture.lesion_id)
    capture_ids = [int(index.capture_ids[row]) for row, _ in hits]
    # The rows are re-read (and re-scoped to the clinic) so that a change since the index was
    # built (a diagnosis withdrawn, a patient deleted) never shows.
    captures = {c.pk: c for c in Capture.objects.filter(pk__in=capture_ids,
                                                        lesion__patient__clinic_id=capture.lesion.patient.clinic_id)
                .select_related("lesion", "lesion__histopathology")}
    results = []
    for (_row, score), capture_id in zip(hits, capture_ids):
        found = captures.get(capture_id)
        if found is None:
            continue
        diagnosis, source = diagnosis_of(found.lesion)
        if not diagnosis:
            continue
        results.append(SimilarCase(capture_id, found.lesion_id, found.lesion.label, diagnosis, source, score))
    return results
