"""The image note of an analysis, built from its stored features and the model's operating point.
The wording itself lives in lesions/stage_note.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lesions import stage_note
from lesions.evolution import Change
from ml.contracts import FeatureRecord, ModelManifest, OperatingPoint, TdsRecord

if TYPE_CHECKING:
    from lesions.models import Analysis


def operating_point_of(analysis: Analysis, current: ModelManifest) -> OperatingPoint:
    """The operating point the analysis ran at. Rows stored before analyses kept their own
    (empty ``operating_point``) get the threshold that ran, and today's figures only when
    today's models are the ones that ran at that threshold."""
    if analysis.operating_point:
        return OperatingPoint.from_dict(analysis.operating_point)
    shipped = current.operating_point()
    if analysis.model_version == current.version and analysis.threshold in (None, shipped.threshold):
        return shipped
    threshold = analysis.threshold if analysis.threshold is not None else shipped.threshold
    return OperatingPoint(threshold=threshold, model_version=analysis.classifier_name)


def note_from_features(probability: float, point: OperatingPoint, features: FeatureRecord | dict) -> str:
    """The image note of one analysis from its stored features (TDS and change included)."""
    tds = features.get("tds") or {}
    change = features.get("change") or {}
    return stage_note.image_note(probability=probability, operating_point=point, tds=tds.get("score"),
                                 tds_band=tds.get("band"), change=change_summary(change),
                                 growing=bool(change.get("growing")))


def tds_record(features: FeatureRecord | dict, structures: list[str]) -> TdsRecord | None:
    """The Total Dermoscopy Score needs the clinician's D (structures); without it there is none."""
    # numpy and scipy come with ml.features: loaded on the first structures form, not at web start.
    from ml.features import tds_band, total_dermoscopy_score  # noqa: PLC0415

    if not structures:
        return None
    a = features["asymmetry"]["axes_asymmetric"]
    b = features["border"]["abrupt_segments"]
    c = features["colours"]["count"]
    d = len(structures)
    score = total_dermoscopy_score(a, b, c, d)
    return {"a": a, "b": b, "c": c, "d": d, "score": score, "band": tds_band(score)}


def change_summary(change: dict | None) -> str | None:
    if not change:
        return None
    return Change(**change).summary()
