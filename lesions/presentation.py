"""What the case page, comparison and printable report show, computed from stored rows."""

from __future__ import annotations

import hashlib
import re
import secrets
import sys
import time
from datetime import date
from functools import cache

from django.conf import settings
from django.core.cache import caches
from django.forms import ModelForm
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from clinic.models import Patient
from clinic.page_cache import cached_under
from clinic.selectors import data_generation
from lesions import notes, selectors, stage_note
from lesions.body_map import Marker, render_inline_svg
from lesions.evolution import Change
from lesions.forms import AssessmentForm, CaptureUploadForm, HistopathologyForm, StructuresForm
from lesions.models import Lesion
from lesions.recalls import DUE_WITHIN_DAYS, recall_state
from lesions.staging import StagingError, recorded_breslow_mm, stage, t_category
from ml import quality_thresholds as quality
from ml.contracts import ModelManifest


def change_between(before: selectors.CaptureRow, after: selectors.CaptureRow,
                   manifest: ModelManifest | None = None) -> Change | None:
    f0 = before.analysis.features if before.analysis and before.analysis.is_done else None
    f1 = after.analysis.features if after.analysis and after.analysis.is_done else None
    return notes.change_between(f0, f1, before_modality=before.capture.modality,
                                after_modality=after.capture.modality,
                                manifest=manifest if manifest is not None else notes.current_manifest())


def pathology_stage_note(histo) -> str:
    """The note from saved histopathology: the stage, or what is known and what is missing."""
    try:
        t = t_category(histo.breslow_mm, histo.ulceration, in_situ=histo.in_situ, primary=histo.primary_tumour)
    except StagingError as exc:
        return stage_note.pathology_incomplete_note(str(exc))
    recorded = recorded_breslow_mm(histo.breslow_mm) if histo.breslow_mm is not None else None
    try:
        result = stage(breslow_mm=histo.breslow_mm, ulcerated=histo.ulceration, n=histo.n_category,
                       m=histo.m_category, in_situ=histo.in_situ, primary=histo.primary_tumour, ldh=histo.ldh)
    except StagingError as exc:
        return stage_note.pathology_incomplete_note(str(exc), t=t, breslow_recorded_mm=recorded,
                                                    ulcerated=histo.ulceration)
    return stage_note.pathology_note(result, ulcerated=histo.ulceration)


def lesion_stage_note(lesion: Lesion, rows: list[selectors.CaptureRow] | None = None) -> str:
    """The lesion-level note: the AJCC stage once histopathology is recorded, else the newest image note.
    Built from saved rows only (never from a form's unsaved submission)."""
    histo = selectors.histopathology_of(lesion)
    if histo is not None:
        return pathology_stage_note(histo)
    rows = rows if rows is not None else selectors.captures_with_analysis(lesion)
    done = [r.analysis for r in rows if r.analysis and r.analysis.is_done]
    if done:
        return done[-1].stage_note
    return f"No analysed capture yet. {stage_note.NEEDS_HISTOPATHOLOGY}"


@cache
def blank_form_html(form_class: type) -> SafeString:
    """An empty form's markup is the same on every case page (the CSRF token is rendered apart),
    so it is rendered once per process: Django's template-based form rendering is the largest
    cost of the case page."""
    return form_class().as_div()


def unbound_form_html(form_class: type[ModelForm], instance) -> SafeString:
    """An unbound model form's markup depends only on its class and initial values: rendered once per
    process for each set of values (the assessment and histopathology forms on every case page)."""
    form = form_class(instance=instance)
    digest = hashlib.sha256(repr(sorted(form.initial.items())).encode()).hexdigest()
    key = f"form:{form_class.__module__}.{form_class.__qualname__}:{digest}"
    fragments = caches["template_fragments"]
    html = fragments.get(key)
    if html is None:
        html = str(form.as_div())
        fragments.set(key, html, None)
    return mark_safe(html)  # noqa: S308 - Django's own rendering of the form, escaped there


def _upload_html(form: CaptureUploadForm | None) -> SafeString:
    return form.as_div() if form is not None and form.is_bound else blank_form_html(CaptureUploadForm)


def _histopathology_html(form: HistopathologyForm | None, histo) -> SafeString:
    if form is not None:
        return form.as_div()  # a bound form with its errors
    if histo is not None:
        return unbound_form_html(HistopathologyForm, histo)
    return blank_form_html(HistopathologyForm)


def error_summary(*forms) -> list[dict]:
    """Every error of the bound forms given, for the summary at the top of the page."""
    summary = []
    for form in forms:
        if form is None or not form.is_bound:
            continue
        for name, errors in form.errors.items():
            field = form.fields.get(name)
            for message in errors:
                summary.append({"label": field.label if field else "Form",
                                "field_id": form[name].auto_id if field else "", "message": message})
    return summary


def case_context(lesion: Lesion, **forms) -> dict:
    rows = selectors.captures_with_analysis(lesion)
    manifest = notes.current_manifest()
    changes = {}
    for before, after in zip(rows, rows[1:]):
        changes[after.capture.pk] = change_between(before, after, manifest)
    histo = selectors.histopathology_of(lesion)
    embedded = [r for r in rows if r.analysis and r.analysis.is_done and r.analysis.embedding]
    similar: list = []
    if embedded:
        # numpy loads only here: a web process that shows no embedded analysis never needs it.
        from lesions.similar import similar_confirmed_cases  # noqa: PLC0415

        similar = similar_confirmed_cases(embedded[-1].capture, embedded[-1].analysis)
    return {
        "lesion": lesion,
        "patient": lesion.patient,
        "rows": rows,
        "changes": changes,
        "stage_note": lesion_stage_note(lesion, rows),
        "histopathology": histo,
        "assessment_form_html": (forms["assessment_form"].as_div() if forms.get("assessment_form")
                                 else unbound_form_html(AssessmentForm, lesion)),
        "histopathology_form_html": _histopathology_html(forms.get("histopathology_form"), histo),
        "upload_form_html": _upload_html(forms.get("upload_form")),
        "structures_form_class": StructuresForm,
        "decision_support": stage_note.DECISION_SUPPORT,
        "growth_flag_fraction": settings.LESION_GROWTH_FLAG_FRACTION,
        "recall_state": recall_state(lesion.next_review_date, timezone.localdate()),
        "quality_limits": quality_limits(),
        "rows_newest_first": rows[::-1],
        "glance": at_a_glance(rows, changes),
        "similar_cases": similar,
        "similar_to": embedded[-1].capture if embedded else None,
        "error_summary": error_summary(*forms.values()),
        "manifest": manifest,
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
    return {"min_laplacian_variance": quality.MIN_LAPLACIAN_VARIANCE,
            "max_clipped_highlights": quality.MAX_CLIPPED_HIGHLIGHTS,
            "max_crushed_shadows": quality.MAX_CRUSHED_SHADOWS}


def _framing_centroid(row: selectors.CaptureRow) -> tuple[float, float] | None:
    analysis = row.analysis
    if analysis is None or analysis.status != "done":
        return None
    measures = ((analysis.features or {}).get("framing") or {}).get("measures") or {}
    if "centroid_x" not in measures:
        return None
    return measures["centroid_x"] * row.capture.width, measures["centroid_y"] * row.capture.height


def alignment(before: selectors.CaptureRow, after: selectors.CaptureRow) -> dict | None:
    """How to lay the later capture over the earlier one, in the earlier image's pixels: the lesion
    centroids meet, and with both captures calibrated (mm per pixel) one later pixel covers
    mm_after / mm_before earlier pixels; uncalibrated captures keep their pixel scale."""
    c0, c1 = _framing_centroid(before), _framing_centroid(after)
    if c0 is None or c1 is None:
        return None
    mm0, mm1 = before.capture.mm_per_pixel, after.capture.mm_per_pixel
    calibrated = bool(mm0 and mm1)
    scale = mm1 / mm0 if calibrated else 1.0
    return {"before_cx": c0[0], "before_cy": c0[1], "after_cx": c1[0], "after_cy": c1[1], "scale": scale,
            "calibrated": calibrated}


def timeline_chart(rows: list[selectors.CaptureRow], width: int = 600, height: int = 160, pad: int = 34) -> dict:
    """Score (0..1, left axis) and diameter (right axis) of every analysed capture over calendar time,
    as SVG coordinates; the template draws the chart and a data table for screen readers."""
    points = []
    for row in rows:
        a = row.analysis
        if a is None or a.status != "done" or a.probability is None:
            continue
        diameter = ((a.features or {}).get("diameter") or {})
        points.append({"row": row, "when": row.capture.taken_at, "score": a.probability,
                       "diameter": diameter.get("value"), "unit": diameter.get("unit", "")})
    if not points:
        return {"points": [], "width": width, "height": height}
    t0, t1 = points[0]["when"].timestamp(), points[-1]["when"].timestamp()
    span = max(t1 - t0, 1.0)
    dmax = max((p["diameter"] or 0) for p in points) or 1.0
    inner_w, inner_h = width - 2 * pad, height - 2 * pad
    for p in points:
        p["x"] = pad + (p["when"].timestamp() - t0) / span * inner_w if len(points) > 1 else width / 2
        p["y_score"] = pad + (1 - p["score"]) * inner_h
        p["y_diameter"] = pad + (1 - (p["diameter"] or 0) / dmax) * inner_h if p["diameter"] is not None else None
        p["x_mark"] = p["x"] - 4
        p["y_mark"] = p["y_diameter"] - 4 if p["y_diameter"] is not None else None
    threshold = next((r.analysis.threshold for r in rows if r.analysis and r.analysis.threshold is not None), None)
    return {
        "points": points, "width": width, "height": height, "pad": pad, "bottom": height - pad,
        "right": width - pad, "dmax": dmax, "unit": points[-1]["unit"],
        "score_line": " ".join(f"{p['x']:.1f},{p['y_score']:.1f}" for p in points),
        "diameter_line": " ".join(f"{p['x']:.1f},{p['y_diameter']:.1f}" for p in points
                                  if p["y_diameter"] is not None),
        "threshold_y": pad + (1 - threshold) * inner_h if threshold is not None else None,
        "threshold": threshold,
    }


def compare_context(lesion: Lesion, a: str | None, b: str | None) -> dict:
    """Two captures (earlier, later), how to align them, neighbours for previous/next, and the timeline."""
    rows = selectors.captures_with_analysis(lesion)
    by_id = {row.capture.pk: i for i, row in enumerate(rows)}
    # ASCII digits only: str.isdigit() accepts "²", which int() refuses.
    chosen = sorted(by_id[int(x)] for x in (a, b) if x and re.fullmatch(r"[0-9]{1,18}", x) and int(x) in by_id)
    if len(chosen) != 2 or chosen[0] == chosen[1]:
        chosen = [len(rows) - 2, len(rows) - 1] if len(rows) >= 2 else []
    manifest = notes.current_manifest()
    context = {"lesion": lesion, "patient": lesion.patient, "rows": rows, "pair": [rows[i] for i in chosen],
               "timeline": timeline_chart(rows), "manifest": manifest}
    if chosen:
        before, after = rows[chosen[0]], rows[chosen[1]]
        context.update(pair_change=change_between(before, after, manifest), alignment=alignment(before, after))
        i = chosen[1]
        context["previous_pair"] = (rows[i - 2].capture.pk, rows[i - 1].capture.pk) if i >= 2 else None
        context["next_pair"] = (rows[i].capture.pk, rows[i + 1].capture.pk) if i + 1 < len(rows) else None
    return context


def at_a_glance(rows: list[selectors.CaptureRow], changes: dict) -> dict:
    """The case page's summary strip: the newest capture, the newest score against its threshold,
    and the change since the visit before."""
    latest = rows[-1] if rows else None
    done = [r for r in rows if r.analysis and r.analysis.status == "done" and r.analysis.probability is not None]
    scored = done[-1] if done else None
    glance = {"latest": latest, "scored": scored, "change": None, "first_visit": len(rows) <= 1}
    if scored is not None:
        a = scored.analysis
        glance["above_threshold"] = a.threshold is not None and a.probability >= a.threshold
        glance["change"] = changes.get(scored.capture.pk)
    return glance


WORKLIST_SECTIONS_TEMPLATE = "lesions/_worklist_sections.html"


def worklist_html(clinic_id: int, today: date) -> SafeString:
    """The worklist's counts and sections for one clinic on one day, rendered.

    Kept in this process's page-part cache (clinic.page_cache) under the clinic's data generation,
    which every write to the clinic's records advances (clinic.models.DataGeneration, kept by database triggers): a
    page is served from the cache only while that generation is unchanged, so a new analysis,
    assessment, result or deletion shows on the next request. The day is in the key because what
    is due or overdue moves with it. One entry per clinic and day, replaced on each change.
    """
    stamp = (data_generation(clinic_id),)  # before the records: see data_generation

    def build() -> str:
        return render_to_string(WORKLIST_SECTIONS_TEMPLATE, {
            "clinic_id": clinic_id, "sections": selectors.worklist(clinic_id, today),
            "due_within_days": DUE_WITHIN_DAYS})

    return mark_safe(cached_under(f"worklist:{clinic_id}:{today.isoformat()}", stamp, build))  # noqa: S308 - our own template's output, escaped there


CASE_BODY_TEMPLATE = "lesions/_case_body.html"
PATIENT_LESIONS_TEMPLATE = "lesions/_patient_lesions.html"
# The cached case body is rendered without a request, so each {% csrf_token %} in it renders this
# stand-in, replaced by the request's own token on every response. Random per process so that
# nothing a user can type forges it; and typed text is escaped, so it never holds the <input> tag.
_CSRF_STAND_IN = secrets.token_hex(16)
_CSRF_INPUT = '<input type="hidden" name="csrfmiddlewaretoken" value="{}">'


def _similar_index_epoch() -> int:
    """lesions.similar.index_epoch, without importing numpy: a process that has not imported it
    has built no index."""
    module = sys.modules.get("lesions.similar")
    return module.index_epoch if module is not None else 0


def _assessor_name(lesion: Lesion) -> str:
    """As read by lesions.selectors.case_lesion_for, without loading the user; else from the user."""
    if hasattr(lesion, "assessor_name"):
        return lesion.assessor_name or ""
    return str(lesion.assessed_by or "")


def case_body_html(lesion: Lesion, csrf_token: str) -> SafeString:
    """The case page's body (all of its content but the page frame), rendered from the saved rows.

    Cached per process (see clinic.page_cache) under the clinic's data generation, which every write to
    the clinic's patients, lesions, captures, analyses and histopathology advances; the day (the
    recall badge moves with it); the shipped models' version (older analyses are named and
    calibrated by it); the assessor's name (a user, whose table no trigger counts); and the
    similar-cases index (rebuilt in the background, lesions.similar). Only the unbound forms are in
    it, each CSRF token a stand-in replaced by `csrf_token`; a bound form with errors is rendered
    by the view from case_context. The caller has checked access and recorded the view."""
    clinic_id = lesion.patient.clinic_id
    generation = data_generation(clinic_id)  # before the records: see data_generation
    manifest = notes.current_manifest()
    # The similar cases come from an index rebuilt once older than SIMILAR_INDEX_MAX_AGE_S, and
    # only when a page asks for it: the stamp's time slot makes a cached body ask again as often.
    slot = int(time.time() // max(1, settings.SIMILAR_INDEX_MAX_AGE_S))
    stamp = (generation, timezone.localdate().isoformat(), manifest.version if manifest else None,
             _assessor_name(lesion), _similar_index_epoch(), slot)

    def build() -> str:
        fresh = lesion
        if generation is not None:
            # The lesion was read before the generation: read it again, so that nothing older
            # than the generation is kept under it (a deleted lesion keeps the row already read).
            # Within the clinic checked: a lesion moved to another clinic meanwhile keeps the row
            # already read, never the other clinic's records.
            fresh = (Lesion.objects.select_related("patient", "patient__clinic", "assessed_by")
                     .filter(pk=lesion.pk, patient__clinic_id=clinic_id).first() or lesion)
        return render_to_string(CASE_BODY_TEMPLATE, {**case_context(fresh), "csrf_token": _CSRF_STAND_IN})

    html = cached_under(f"case:{clinic_id}:{lesion.pk}", stamp, build)
    return mark_safe(html.replace(_CSRF_INPUT.format(_CSRF_STAND_IN), format_html(_CSRF_INPUT, csrf_token)))  # noqa: S308 - our own template's output, escaped there


def patient_lesions_html(patient: Patient) -> SafeString:
    """The patient page's lesions table and body map, rendered from the saved rows: cached per
    process (see clinic.page_cache) under the clinic's data generation and the day (recall badges).
    The patient's own details above it are rendered on every request from the row just read."""
    generation = data_generation(patient.clinic_id)  # before the records: see data_generation
    stamp = (generation, timezone.localdate().isoformat())

    def build() -> str:
        return render_to_string(PATIENT_LESIONS_TEMPLATE,
                                patient_context(patient, selectors.patient_lesions_with_trends(patient)))

    return mark_safe(cached_under(f"patient:{patient.clinic_id}:{patient.pk}", stamp, build))  # noqa: S308 - as above
