"""Reads for lesion pages, always scoped to the user's clinics (another clinic's object is a 404)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, OuterRef, Prefetch, QuerySet, Subquery
from django.shortcuts import get_object_or_404

from clinic.models import Patient
from clinic.selectors import clinic_ids_for
from lesions.models import NEWEST_FIRST, Analysis, Capture, Histopathology, Lesion


def lesions_with_latest(patient: Patient) -> QuerySet[Lesion]:
    """The patient's lesions with their capture count and newest capture's id (for its thumbnail)."""
    newest = Capture.objects.filter(lesion=OuterRef("pk")).order_by("-taken_at", "-id").values("pk")[:1]
    return (patient.lesions.annotate(capture_count=Count("captures"), latest_capture_id=Subquery(newest))
            .order_by("label", "id"))


def lesion_for(user: AbstractBaseUser, pk: int) -> Lesion:
    return get_object_or_404(Lesion.objects.select_related("patient", "patient__clinic"), pk=pk,
                             patient__clinic_id__in=clinic_ids_for(user))


def capture_for(user: AbstractBaseUser, pk: int) -> Capture:
    return get_object_or_404(Capture.objects.select_related("lesion", "lesion__patient"), pk=pk,
                             lesion__patient__clinic_id__in=clinic_ids_for(user))


def analysis_for(user: AbstractBaseUser, pk: int) -> Analysis:
    return get_object_or_404(Analysis.objects.select_related("capture", "capture__lesion__patient"), pk=pk,
                             capture__lesion__patient__clinic_id__in=clinic_ids_for(user))


def current_analysis(capture: Capture) -> Analysis | None:
    """The analysis a capture shows: its newest queued one (lesions.models.NEWEST_FIRST)."""
    return capture.analyses.order_by(*NEWEST_FIRST).first()


@dataclass
class CaptureRow:
    capture: Capture
    analysis: Analysis | None  # the capture's current analysis


def captures_with_analysis(lesion: Lesion) -> list[CaptureRow]:
    """Captures in time order, each with its current analysis, in two queries."""
    newest_first = Analysis.objects.order_by(*NEWEST_FIRST)
    captures = lesion.captures.order_by("taken_at", "id").prefetch_related(
        Prefetch("analyses", queryset=newest_first, to_attr="analyses_newest_first"))
    return [CaptureRow(c, c.analyses_newest_first[0] if c.analyses_newest_first else None) for c in captures]


def histopathology_of(lesion: Lesion) -> Histopathology | None:
    try:
        return lesion.histopathology
    except Histopathology.DoesNotExist:
        return None


def analysis_statuses(lesion: Lesion) -> list[dict]:
    """The current analysis of each capture, for the case page's polling script: the status
    value with its label and the pending/finished flags, so the script compares no status strings."""
    rows = (Analysis.objects.filter(capture__lesion=lesion).order_by("capture_id", *NEWEST_FIRST)
            .values("id", "capture_id", "status", "error", "probability"))
    current: dict[int, dict] = {}
    for row in rows:
        current.setdefault(row["capture_id"], row)
    labels = dict(Analysis.Status.choices)
    return [{**row, "label": labels[row["status"]], "pending": row["status"] in Analysis.PENDING,
             "finished": row["status"] in Analysis.FINISHED} for row in current.values()]
