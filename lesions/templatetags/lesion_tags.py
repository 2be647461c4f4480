import hashlib
import json

from django import template

from lesions import notes, stage_note

register = template.Library()


@register.filter
def get_item(mapping: dict, key):
    return mapping.get(key) if mapping else None


@register.filter
def readable_names(values) -> str:
    """['light_brown', 'blue_grey'] -> 'light brown, blue-grey' for display."""
    names = {"blue_grey": "blue-grey"}
    return ", ".join(names.get(v, str(v).replace("_", " ")) for v in values or [])


# What a finished analysis's capture card shows of the analysis row. The admin may edit any of
# them on a finished row without touching finished_at, so the card's cache key holds a digest of all.
CARD_ANALYSIS_FIELDS = ("status", "error", "probability", "threshold", "operating_point", "features",
                        "overlay", "heatmap", "segmenter_name", "classifier_name", "device", "model_version")


@register.filter
def card_digest(analysis) -> str:
    """A digest of what the capture card shows of ``analysis`` (for its fragment cache key)."""
    shown = {name: str(getattr(analysis, name, "")) if name in ("overlay", "heatmap") else getattr(analysis, name, None)
             for name in CARD_ANALYSIS_FIELDS}
    return hashlib.sha256(json.dumps(shown, sort_keys=True, default=str).encode()).hexdigest()[:32]


@register.simple_tag
def score_name(analysis, manifest) -> str:
    """'melanoma probability' or 'melanoma score (not a probability)' for this analysis (lesions.stage_note)."""
    return notes.score_name_for(analysis, manifest)


@register.simple_tag
def result_line(analysis, manifest) -> str:
    """The one-line result of a finished analysis."""
    if analysis is None or analysis.probability is None or analysis.threshold is None:
        return ""
    return stage_note.result_line(analysis.probability, analysis.threshold, notes.is_calibrated(analysis, manifest))


@register.simple_tag
def tds_provenance() -> str:
    return stage_note.TDS_PROVENANCE


@register.simple_tag
def tds_unavailable_reason(capture) -> str:
    return stage_note.tds_unavailable_reason(modality=capture.modality, melanocytic=capture.melanocytic,
                                             structures=capture.structures)
