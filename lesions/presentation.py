"""What the case page, comparison and printable report show, computed from stored rows."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.utils.safestring import SafeString

from lesions import selectors, stage_note
from lesions.evolution import Change, compare
from lesions.forms import AssessmentForm, CaptureUploadForm, HistopathologyForm, StructuresForm
from lesions.models import Lesion
from lesions.staging import StagingError, stage


def change_between(before: selectors.CaptureRow, after: selectors.CaptureRow) -> Change | None:
    f0 = before.analysis.features if before.analysis and before.analysis.is_done else None
    f1 = after.analysis.features if after.analysis and after.analysis.is_done else None
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


def case_context(lesion: Lesion, **forms) -> dict:
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
    }
