"""What the case page, comparison and printable report show, computed from stored rows."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from django.utils.safestring import SafeString

from lesions import selectors, stage_note
from lesions.evolution import Change, compare
from lesions.forms import AssessmentForm, CaptureUploadForm, HistopathologyForm, StructuresForm
from lesions.models import Lesion
from lesions.recalls import recall_state
from lesions.staging import StagingError, stage


def change_between(before: selectors.CaptureRow, after: selectors.CaptureRow) -> Change | None:
    f0 = before.analysis.features if before.analysis and before.analysis.status == "done" else None
    f1 = after.analysis.features if after.analysis and after.analysis.status == "done" else None
    if not f0 or not f1:
        return None
    return compare(f0, f1, settings.LESION_GROWTH_FLAG_FRACTION)


def lesion_stage_note(lesion: Lesion, rows: list[selectors.CaptureRow] | None = None) -> str:
    """The lesion-level note: the AJCC stage once histopathology is recorded, else the newest image note."""
    histo = selectors.histopathology_of(lesion)
    if histo is not None:
        try:
            result = stage(breslow_mm=histo.breslow_mm, ulcerated=histo.ulceration, n=histo.n_category,
                           m=histo.m_category, in_situ=histo.in_situ)
            return stage_note.pathology_note(result)
        except StagingError as exc:
            return stage_note.pathology_incomplete_note(str(exc))
    rows = rows if rows is not None else selectors.captures_with_analysis(lesion)
    done = [r.analysis for r in rows if r.analysis and r.analysis.status == "done"]
    if done:
        return done[-1].stage_note
    return f"No analysed capture yet. {stage_note.NEEDS_HISTOPATHOLOGY}"


@cache
def blank_form_html(form_class: type) -> SafeString:
    """An empty form's markup is the same on every case page (the CSRF token is rendered apart),
    so it is rendered once per process: Django's template-based form rendering is the largest
    cost of the case page."""
    return form_class().as_div()


def _upload_html(form: CaptureUploadForm | None) -> SafeString:
    return form.as_div() if form is not None and form.is_bound else blank_form_html(CaptureUploadForm)


def _histopathology_html(form: HistopathologyForm | None, histo) -> SafeString:
    if form is not None:
        return form.as_div()  # a bound form with its errors
    if histo is not None:
        return HistopathologyForm(instance=histo).as_div()
    return blank_form_html(HistopathologyForm)


def case_context(request: HttpRequest, lesion: Lesion, **forms) -> dict:
    rows = selectors.captures_with_analysis(lesion)
    changes = {}
    for before, after in zip(rows, rows[1:]):
        changes[after.capture.pk] = change_between(before, after)
    histo = selectors.histopathology_of(lesion)
    return {
        "lesion": lesion,
        "patient": lesion.patient,
        "rows": rows,
        "changes": changes,
        "stage_note": lesion_stage_note(lesion, rows),
        "histopathology": histo,
        "assessment_form": forms.get("assessment_form") or AssessmentForm(instance=lesion),
        "histopathology_form_html": _histopathology_html(forms.get("histopathology_form"), histo),
        "upload_form_html": _upload_html(forms.get("upload_form")),
        "structures_form_class": StructuresForm,
        "decision_support": stage_note.DECISION_SUPPORT,
        "growth_flag_fraction": settings.LESION_GROWTH_FLAG_FRACTION,
        "recall_state": recall_state(lesion.next_review_date, timezone.localdate()),
        "quality_limits": quality_limits(),
    }


def score_class(probability: float | None, threshold: float | None) -> str:
    if probability is None:
        return "score-none"
    return "score-high" if threshold is not None and probability >= threshold else "score-low"


def marker_class(lesion: Lesion) -> str:
    """Markers: excised/closed lesions grey, monitored ones red above the model's threshold, else green."""
    if lesion.status != Lesion.Status.MONITORING:
        return f"status-{lesion.status}"
    return score_class(getattr(lesion, "latest_probability", None), getattr(lesion, "latest_threshold", None))


def sparkline_points(trend: list[tuple], width: float = 100.0, height: float = 24.0) -> str:
    """SVG polyline points for scores 0..1 over captures (equal spacing: visits, not calendar time)."""
    values = [p for _t, p, _th in trend if p is not None]
    if len(values) < 2:
        return ""
    step = width / (len(values) - 1)
    return " ".join(f"{i * step:.1f},{height - v * height:.1f}" for i, v in enumerate(values))


def patient_context(patient, lesions: list[Lesion]) -> dict:
    from django.urls import reverse

    from lesions.body_map import Marker, render_inline_svg

    markers: dict[str, list[Marker]] = {"front": [], "back": []}
    unplaced = []
    for lesion in lesions:
        lesion.marker_class = marker_class(lesion)
        lesion.sparkline = sparkline_points(lesion.trend)
        lesion.trend_text = ("Scores over time: " + ", ".join(f"{p:.2f}" for _t, p, _th in lesion.trend
                                                               if p is not None)) if lesion.trend else ""
        lesion.recall_state = recall_state(lesion.next_review_date, timezone.localdate())
        if lesion.body_map_view in markers and lesion.body_map_x is not None:
            score = (f", latest score {lesion.latest_probability:.2f}" if lesion.latest_probability is not None
                     else ", not analysed yet")
            markers[lesion.body_map_view].append(Marker(
                lesion.body_map_x, lesion.body_map_y, reverse("lesion_case", args=[lesion.pk]),
                f"{lesion.label} ({lesion.get_status_display()}{score})", lesion.marker_class))
        else:
            unplaced.append(lesion)
    return {
        "patient": patient,
        "lesions": lesions,
        "unplaced": unplaced,
        "body_map_front": SafeString(render_inline_svg("front", markers["front"], label="Front of the body")),
        "body_map_back": SafeString(render_inline_svg("back", markers["back"], label="Back of the body")),
    }


def body_map_inputs(form) -> dict:
    """The lesion form's two clickable figures, with the point already chosen (if any) marked."""
    from lesions.body_map import Marker, render_inline_svg

    view = form["body_map_view"].value()
    try:
        x, y = float(form["body_map_x"].value()), float(form["body_map_y"].value())
    except (TypeError, ValueError):
        view = None
    figures = {}
    for side in ("front", "back"):
        markers = [Marker(x, y, "#id_body_site", "The lesion's place", "placed")] if view == side else []
        figures[f"body_map_{side}"] = SafeString(render_inline_svg(
            side, markers, interactive=True, label=f"{side.title()} of the body: click where the lesion is"))
    return figures


def quality_limits() -> dict[str, float]:
    """The image-quality thresholds, for the webcam preview's hint (static/js/quality.js)."""
    from ml import quality

    return {"min_laplacian_variance": quality.MIN_LAPLACIAN_VARIANCE,
            "max_clipped_highlights": quality.MAX_CLIPPED_HIGHLIGHTS,
            "max_crushed_shadows": quality.MAX_CRUSHED_SHADOWS}
