"""What the case page, comparison and printable report show, computed from stored rows."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.utils.safestring import SafeString

from lesions import notes, selectors, stage_note
from lesions.evolution import Change
from lesions.forms import AssessmentForm, CaptureUploadForm, HistopathologyForm, StructuresForm
from lesions.models import Lesion
from lesions.staging import StagingError, recorded_breslow_mm, stage, t_category
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


def _upload_html(form: CaptureUploadForm | None) -> SafeString:
    return form.as_div() if form is not None and form.is_bound else blank_form_html(CaptureUploadForm)


def _histopathology_html(form: HistopathologyForm | None, histo) -> SafeString:
    if form is not None:
        return form.as_div()  # a bound form with its errors
    if histo is not None:
        return HistopathologyForm(instance=histo).as_div()
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
        "error_summary": error_summary(*forms.values()),
        "manifest": manifest,
    }
