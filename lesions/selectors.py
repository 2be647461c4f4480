"""Reads for lesion pages, always scoped to the user's clinics (another clinic's object is a 404)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.shortcuts import get_object_or_404

from clinic.models import Patient
from clinic.selectors import count_up_to, member_clinic_ids
from lesions.models import NEWEST_FIRST, Analysis, Capture, Histopathology, Lesion
from lesions.recalls import due_cutoff, recall_state


def lesions_with_latest(patient: Patient) -> QuerySet[Lesion]:
    """The patient's lesions with their capture count and newest capture's id (for its thumbnail)."""
    newest = Capture.objects.filter(lesion=OuterRef("pk")).order_by("-taken_at", "-id").values("pk")[:1]
    return (patient.lesions.annotate(capture_count=Count("captures"), latest_capture_id=Subquery(newest))
            .order_by("label", "id"))


def lesion_for(user: AbstractBaseUser, pk: int) -> Lesion:
    return get_object_or_404(Lesion.objects.select_related("patient", "patient__clinic", "assessed_by"), pk=pk,
                             patient__clinic_id__in=member_clinic_ids(user))


def case_lesion_for(user: AbstractBaseUser, pk: int) -> Lesion:
    """lesion_for for the case page, whose body is kept (lesions.presentation.case_body_html) and
    reads its records afresh when rebuilt: the lesion and its patient, and the assessor's user
    name for the kept body's stamp as `assessor_name` (the page shows str(user), which is the
    user name for Django's user model, the one used here). The case page is the most viewed, and
    each joined table costs the ORM's compiling and PostgreSQL's planning on every view."""
    assessor_name = F(f"assessed_by__{get_user_model().USERNAME_FIELD}")
    return get_object_or_404(Lesion.objects.select_related("patient").annotate(assessor_name=assessor_name),
                             pk=pk, patient__clinic_id__in=member_clinic_ids(user))


def capture_for(user: AbstractBaseUser, pk: int) -> Capture:
    return get_object_or_404(Capture.objects.select_related("lesion", "lesion__patient"), pk=pk,
                             lesion__patient__clinic_id__in=member_clinic_ids(user))


def analysis_for(user: AbstractBaseUser, pk: int) -> Analysis:
    return get_object_or_404(Analysis.objects.select_related("capture", "capture__lesion__patient"), pk=pk,
                             capture__lesion__patient__clinic_id__in=member_clinic_ids(user))


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


def histopathology_to_edit(lesion: Lesion) -> Histopathology:
    """A fresh copy of the lesion's histopathology (or a new one) for a form to validate into,
    kept apart from the lesion's cached row so an invalid submission never shows as saved."""
    return Histopathology.objects.filter(lesion_id=lesion.pk).first() or Histopathology(lesion_id=lesion.pk)


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


# The worklist: what waits for a clinician in one clinic. Each section is one count and one
# bounded list (two queries), whatever the clinic's size; the filters run on partial or
# composite indexes (lesions/models.py Meta.indexes).
WORKLIST_ROWS = 25
COUNT_CAP = 1000


@dataclass
class WorklistSection:
    key: str
    title: str
    empty: str
    count: int
    items: list
    more: bool = False  # more than `count` rows (the count stopped at COUNT_CAP)


def _superseded() -> Exists:
    """True for an analysis that is not its capture's current one (lesions.models.NEWEST_FIRST:
    newest queued, then highest id); an older model version's row is history."""
    return Exists(Analysis.objects.filter(Q(queued_at__gt=OuterRef("queued_at"))
                                          | Q(queued_at=OuterRef("queued_at"), id__gt=OuterRef("id")),
                                          capture_id=OuterRef("capture_id")))


# What a worklist row never shows: feature records, notes and the embedding are most of a row's bytes.
WORKLIST_DEFERRED = ("features", "timings", "stage_note", "embedding", "operating_point",
                     "capture__lesion__notes", "capture__lesion__patient__notes")


def _current_analyses(clinic_id: int) -> QuerySet[Analysis]:
    return (Analysis.objects.filter(capture__lesion__patient__clinic_id=clinic_id).filter(~_superseded())
            .select_related("capture__lesion__patient"))


def _section(key: str, title: str, empty: str, queryset: QuerySet, limit: int) -> WorklistSection:
    # Counting stops at COUNT_CAP rows: "1000+" tells a clinician as much as an exact 183,212 and
    # costs a bounded scan instead of the whole clinic's history.
    count = count_up_to(queryset, COUNT_CAP)
    return WorklistSection(key, title, empty, min(count, COUNT_CAP), list(queryset[:limit]), count > COUNT_CAP)


def worklist_querysets(clinic_id: int, today: date) -> dict[str, QuerySet]:
    """Each worklist section's rows, in display order (one definition for the page and its tests)."""
    done = (_current_analyses(clinic_id)
            .filter(status=Analysis.Status.DONE, probability__isnull=False,
                    capture__lesion__status=Lesion.Status.MONITORING)
            .filter(Q(capture__lesion__assessed_at__isnull=True)
                    | Q(capture__lesion__assessed_at__lt=F("finished_at")))
            .order_by("-probability", "-id")  # walks analysis_status_probability, stops after a page
            .defer(*WORKLIST_DEFERRED))
    failed = (_current_analyses(clinic_id).filter(status=Analysis.Status.FAILED).order_by("-finished_at", "-id")
              .defer(*WORKLIST_DEFERRED))
    recalls = (Lesion.objects.filter(patient__clinic_id=clinic_id, status=Lesion.Status.MONITORING,
                                     next_review_date__isnull=False, next_review_date__lte=due_cutoff(today))
               .select_related("patient").order_by("next_review_date", "id"))
    # NOT EXISTS, not the reverse join's IS NULL: PostgreSQL estimates the anti-join's rows and
    # walks lesion_excision_by_decided in display order, where the LEFT JOIN made it sort them all.
    no_histology = (Lesion.objects.filter(patient__clinic_id=clinic_id,
                                          decision__in=[Lesion.Decision.BIOPSY, Lesion.Decision.EXCISE])
                    .filter(~Exists(Histopathology.objects.filter(lesion_id=OuterRef("pk"))))
                    .select_related("patient").order_by("assessed_at", "id"))
    return {"unassessed": done, "failed": failed, "recalls": recalls, "histopathology": no_histology}


def worklist(clinic_id: int, today: date, limit: int = WORKLIST_ROWS) -> list[WorklistSection]:
    querysets = worklist_querysets(clinic_id, today)
    done, failed, recalls, no_histology = (querysets[k] for k in ("unassessed", "failed", "recalls", "histopathology"))
    sections = [
        _section("unassessed", "Analyses to review", "No analysis waits for review.", done, limit),
        _section("failed", "Failed analyses", "No analysis has failed.", failed, limit),
        _section("recalls", "Follow-ups due or overdue", "No follow-up is due in the next two weeks.",
                 recalls, limit),
        _section("histopathology", "Biopsy or excision without histopathology",
                 "Every biopsy and excision has its histopathology.", no_histology, limit),
    ]
    for lesion in sections[2].items:
        lesion.recall_state = recall_state(lesion.next_review_date, today)
    return sections


def recall_list(clinic_id: int, until: date) -> QuerySet[Lesion]:
    """Lesions under monitoring with a review on or before `until` (overdue ones included)."""
    return (Lesion.objects.filter(patient__clinic_id=clinic_id, status=Lesion.Status.MONITORING,
                                  next_review_date__isnull=False, next_review_date__lte=until)
            .select_related("patient").order_by("next_review_date", "patient__name", "id"))


def patient_lesions_with_trends(patient: Patient) -> list[Lesion]:
    """The patient page's lesions, each with `trend` (score of each analysed capture, oldest first),
    `latest_probability` and `latest_threshold`, in two queries whatever the number of captures."""
    lesions = list(lesions_with_latest(patient))
    scores = (Analysis.objects.filter(capture__lesion__patient=patient, status=Analysis.Status.DONE)
              .filter(~_superseded()).order_by("capture__taken_at", "capture_id")
              .values_list("capture__lesion_id", "capture__taken_at", "probability", "threshold"))
    trends: dict[int, list[tuple]] = {}
    for lesion_id, taken_at, probability, threshold in scores:
        trends.setdefault(lesion_id, []).append((taken_at, probability, threshold))
    for lesion in lesions:
        lesion.trend = trends.get(lesion.pk, [])
        last = lesion.trend[-1] if lesion.trend else (None, None, None)
        lesion.latest_probability, lesion.latest_threshold = last[1], last[2]
    return lesions
