"""Shipping an ensemble: another classifier added beside the shipped (primary) one.

``python -m ml ensemble-add --name mobilenet DIR`` copies DIR's ``classifier.keras`` and its JSON
into the models folder as ``classifier_mobilenet.*`` and records it in ``classifier.json``'s
``ensemble`` key. The melanoma score becomes the mean of the members' raw logits (ml.inference),
so the primary's calibration, threshold and test figures no longer describe it: they are removed
here, and ``python -m ml calibrate`` (val) and ``python -m ml evaluate --record`` (test) measure
the ensemble's anew. The primary keeps giving the heat map and the similar-case embedding.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

from ml.inference import verify_model_file

# The figures that belong to the score, not to the primary model: stale once the score changes.
SCORE_FIGURES = ("calibrator", "calibration", "test_metrics", "val_metrics", "threshold_rule")


def _alone(meta: dict) -> dict:
    """A member's own AUCs, as it scored alone (kept for the model card's variants table)."""
    return {"val_roc_auc": (meta.get("calibration") or {}).get("roc_auc"),
            "test_roc_auc": (meta.get("test_metrics") or {}).get("roc_auc")}


def add_member(models: Path, source: Path, name: str, *, licence: str | None = None) -> Path:
    """Copy the classifier in ``source`` (a models folder, or its classifier JSON) into ``models`` as
    ``classifier_<name>`` and make it an ensemble member of the shipped classifier. Returns the
    member's JSON path. Refuses a file that does not match its own JSON's sha256. ``licence``: the
    weights' licence statement, for a JSON that does not carry one yet."""
    source_json = source / "classifier.json" if source.is_dir() else source
    meta = json.loads(source_json.read_text())
    if licence:
        meta["licence"] = licence
    source_file = verify_model_file(source_json.parent, meta)
    target_json = models / f"classifier_{name}.json"
    if target_json.exists() or (models / f"classifier_{name}.keras").exists():
        raise FileExistsError(f"{target_json.stem} is already in {models}")
    primary_path = models / "classifier.json"
    primary = json.loads(primary_path.read_text())
    verify_model_file(models, primary)
    shutil.copyfile(source_file, models / f"classifier_{name}.keras")
    target_json.write_text(json.dumps({**meta, "file": f"classifier_{name}.keras"}, indent=2))

    ensemble = primary.get("ensemble") or {
        "combination": "mean_logit",
        "rule": "mean of the members' raw (uncalibrated) logits, equal weights, each member's input prepared "
                "as its own JSON says (input size, crop, colour constancy, TTA); then one Platt calibration "
                "of that mean (this file's calibrator) and this file's threshold",
        "members": [{"name": primary["name"], "manifest": primary_path.name, "primary": True,
                     "role": "heat map (CAM) and similar-case embedding", "sha256": primary["sha256"],
                     "version": primary["version"], "licence": primary.get("licence"), **_alone(primary)}],
    }
    ensemble["members"].append({"name": meta["name"], "manifest": target_json.name, "sha256": meta["sha256"],
                                "version": meta["version"], "licence": meta.get("licence"), **_alone(meta)})
    digests = "-".join(m["sha256"][:8] for m in ensemble["members"])
    updated = {k: v for k, v in primary.items() if k not in SCORE_FIGURES}
    updated.update({"ensemble": ensemble, "calibrated": False,
                    "name": "ensemble_" + "_".join(m["name"].removeprefix("classifier_") for m in ensemble["members"]),
                    # A new version: every analysis records which score produced it.
                    "version": f"{dt.date.today():%Y%m%d}-ens-{digests}"})
    primary_path.write_text(json.dumps(updated, indent=2))
    return target_json
