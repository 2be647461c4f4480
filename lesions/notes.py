"""The image note of an analysis, built from its stored features and the model's operating point.
The wording itself lives in lesions/stage_note.py."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from django.conf import settings

from lesions import stage_note
from lesions.evolution import Change, area_change_uncertainty, compare
from ml.contracts import FeatureRecord, ModelManifest, ModelsMissing, OperatingPoint, TdsRecord, read_model_manifest

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


def tds_applies(*, modality: str, melanocytic: bool | None) -> bool:
    """Stolz's ABCD rule is the second step of the two-step algorithm: it scores dermoscopic
    images of lesions the clinician has judged melanocytic, nothing else."""
    return modality == "dermoscopic" and melanocytic is True


def tds_record(features: FeatureRecord | dict, structures: list[str], *, modality: str = "dermoscopic",
               melanocytic: bool | None = None) -> TdsRecord | None:
    """The Total Dermoscopy Score: A, B, C measured from the outline, D (structures) entered by the
    clinician. None where the TDS is not valid (not dermoscopic, not melanocytic) or D is missing."""
    # numpy and scipy come with ml.features: loaded on the first structures form, not at web start.
    from ml.features import tds_band, total_dermoscopy_score  # noqa: PLC0415

    if not structures or not tds_applies(modality=modality, melanocytic=melanocytic):
        return None
    a = features["asymmetry"]["axes_asymmetric"]
    b = features["border"]["abrupt_segments"]
    c = features["colours"]["count"]
    d = len(structures)
    score = total_dermoscopy_score(a, b, c, d)
    return {"a": a, "b": b, "c": c, "d": d, "score": score, "band": tds_band(score)}


def point_with_calibration(manifest: ModelManifest) -> OperatingPoint:
    """The shipped operating point plus whether the classifier is calibrated (the manifest's
    `calibrated`, literally true), stored with each analysis so its output is named correctly."""
    point = manifest.operating_point()
    return dataclasses.replace(point, extra={**point.extra,
                                             "calibrated": manifest.classifier.get("calibrated") is True})


def current_manifest() -> ModelManifest | None:
    """The shipped models' manifest (JSON only, no TensorFlow), or None when it is missing."""
    try:
        return read_model_manifest(settings.ML_MODELS_DIR)
    except ModelsMissing:
        return None


def is_calibrated(analysis: Analysis, manifest: ModelManifest | None) -> bool:
    """Whether an analysis's output is a calibrated probability: as stored with the analysis, or
    (older rows) only when the current model version made it and its manifest says calibrated."""
    stored = getattr(analysis, "operating_point", None) or {}
    if "calibrated" in stored:
        return stored["calibrated"] is True
    if manifest is None:
        return False
    return analysis.model_version == manifest.version and manifest.classifier.get("calibrated") is True


def score_name_for(analysis: Analysis, manifest: ModelManifest | None) -> str:
    return stage_note.score_name(is_calibrated(analysis, manifest))


def current_score_name() -> str:
    """The name for a column of scores from the current model (admin, CSV exports)."""
    manifest = current_manifest()
    return stage_note.score_name(manifest is not None and manifest.classifier.get("calibrated") is True)


def segmenter_area_uncertainty(manifest: ModelManifest | None) -> float | None:
    """Area-change uncertainty from the segmenter's measured Jaccard on its test images (the
    thresholded masks the app uses, else the mean soft Jaccard); None when not measured."""
    test = manifest.segmenter.test_metrics if manifest is not None else {}
    jaccard = test.get("jaccard_thresholded_mean", test.get("jaccard_mean"))
    return area_change_uncertainty(jaccard) if isinstance(jaccard, (int, float)) else None


def change_between(before: dict | None, after: dict | None, *, before_modality: str, after_modality: str,
                   manifest: ModelManifest | None) -> Change | None:
    """The change between two captures' features (lesions.evolution.compare with the clinic's
    flag fraction and the segmenter's uncertainty)."""
    if not before or not after:
        return None
    return compare(before, after, before_modality=before_modality, after_modality=after_modality,
                   area_uncertainty=segmenter_area_uncertainty(manifest),
                   flag_fraction=settings.LESION_GROWTH_FLAG_FRACTION)


def change_summary(change: dict | None) -> str | None:
    if not change:
        return None
    return Change(**change).summary()
