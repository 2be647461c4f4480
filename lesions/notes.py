"""The image note of an analysis, built from its stored features and the model's operating point.
The wording itself lives in lesions/stage_note.py."""

from __future__ import annotations

from django.conf import settings

from lesions import stage_note
from lesions.evolution import Change, area_change_uncertainty, compare
from ml.features import tds_band, total_dermoscopy_score
from ml.inference import ModelsMissing, read_manifest


def operating_point(manifest: dict) -> stage_note.ModelOperatingPoint:
    """The classifier's threshold and test figures from its manifest. Figures the manifest does
    not state stay None (the note then says less); older manifests name the counts `images`,
    `positives` and `confusion.fn`, which are read as the same figures."""
    cls = manifest["classifier"]
    test = cls.get("test_metrics") or {}
    threshold = float(cls["threshold"])
    below = test.get("melanomas_below_threshold")
    confusion = test.get("confusion") or {}
    if below is None and "fn" in confusion and test.get("threshold") == cls["threshold"]:
        below = confusion["fn"]
    return stage_note.ModelOperatingPoint(
        threshold=threshold, sensitivity=test.get("sensitivity"), specificity=test.get("specificity"),
        calibrated=cls.get("calibrated") is True,
        sensitivity_ci95=_pair(test.get("sensitivity_ci95")), specificity_ci95=_pair(test.get("specificity_ci95")),
        n_images=test.get("n_images", test.get("images")), n_melanomas=test.get("n_melanomas", test.get("positives")),
        melanomas_below_threshold=below)


def _pair(value) -> tuple[float, float] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return float(value[0]), float(value[1])
    return None


def current_manifest() -> dict | None:
    """The shipped models' manifest (JSON only, no TensorFlow), or None when it is missing."""
    try:
        return read_manifest(settings.ML_MODELS_DIR)
    except ModelsMissing:
        return None


def is_calibrated(analysis, manifest: dict | None) -> bool:
    """Whether an analysis's output is a calibrated probability: only when it was made by the
    current model version and that model's manifest says it is calibrated."""
    if manifest is None:
        return False
    return (getattr(analysis, "model_version", None) == manifest["version"]
            and manifest["classifier"].get("calibrated") is True)


def score_name_for(analysis, manifest: dict | None) -> str:
    return stage_note.score_name(is_calibrated(analysis, manifest))


def current_score_name() -> str:
    """The name for a column of scores from the current model (admin, CSV exports)."""
    manifest = current_manifest()
    return stage_note.score_name(bool(manifest) and manifest["classifier"].get("calibrated") is True)


def note_from_features(probability: float, point: stage_note.ModelOperatingPoint, features: dict) -> str:
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


def tds_record(features: dict, structures: list[str], *, modality: str = "dermoscopic",
               melanocytic: bool | None = None) -> dict | None:
    """The Total Dermoscopy Score: A, B, C measured from the outline, D (structures) entered by the
    clinician. None where the TDS is not valid (not dermoscopic, not melanocytic) or D is missing."""
    if not structures or not tds_applies(modality=modality, melanocytic=melanocytic):
        return None
    a = features["asymmetry"]["axes_asymmetric"]
    b = features["border"]["abrupt_segments"]
    c = features["colours"]["count"]
    d = len(structures)
    score = total_dermoscopy_score(a, b, c, d)
    return {"a": a, "b": b, "c": c, "d": d, "score": score, "band": tds_band(score)}


def segmenter_area_uncertainty(manifest: dict | None) -> float | None:
    """Area-change uncertainty from the segmenter's measured Jaccard on its test images (the
    thresholded masks the app uses, else the mean soft Jaccard); None when not measured."""
    test = ((manifest or {}).get("segmenter") or {}).get("test_metrics") or {}
    jaccard = test.get("jaccard_thresholded_mean", test.get("jaccard_mean"))
    return area_change_uncertainty(jaccard) if isinstance(jaccard, (int, float)) else None


def change_between(before: dict | None, after: dict | None, *, before_modality: str, after_modality: str,
                   manifest: dict | None) -> Change | None:
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
