"""The image note of an analysis, built from its stored features and the model's operating point.
The wording itself lives in lesions/stage_note.py."""

from __future__ import annotations

from lesions import stage_note


def operating_point(manifest: dict) -> stage_note.ModelOperatingPoint:
    cls = manifest["classifier"]
    test = cls.get("test_metrics") or {}
    return stage_note.ModelOperatingPoint(threshold=float(cls["threshold"]), sensitivity=test.get("sensitivity"),
                                          specificity=test.get("specificity"))


def note_from_features(probability: float, point: stage_note.ModelOperatingPoint, features: dict) -> str:
    """The image note of one analysis from its stored features (TDS and change included)."""
    tds = features.get("tds") or {}
    change = features.get("change") or {}
    return stage_note.image_note(probability=probability, operating_point=point, tds=tds.get("score"),
                                 tds_band=tds.get("band"), change=change_summary(change),
                                 growing=bool(change.get("growing")))


def tds_record(features: dict, structures: list[str]) -> dict | None:
    """The Total Dermoscopy Score needs the clinician's D (structures); without it there is none."""
    from ml.features import tds_band, total_dermoscopy_score

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
    from lesions.evolution import Change

    return Change(**change).summary()
