"""The typed contract between ml/ and the web app: the model manifest and its operating point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml.contracts import DEFAULT_MODELS_DIR, ModelsMissing, OperatingPoint, read_model_manifest
from ml.inference import read_manifest

SEGMENTER = {"kind": "segmenter", "name": "unet", "version": "s1", "file": "segmenter.keras",
             "input_shape": [128, 128, 3], "threshold": 0.5}


def write_models(folder: Path, classifier: dict) -> Path:
    (folder / "segmenter.json").write_text(json.dumps(SEGMENTER))
    (folder / "classifier.json").write_text(json.dumps({
        "kind": "classifier", "name": "cls", "version": "c1", "file": "classifier.keras",
        "input_shape": [224, 224, 3], **classifier}))
    return folder


def test_the_shipped_manifest_reads_typed_and_as_the_old_dicts():
    manifest = read_model_manifest(DEFAULT_MODELS_DIR)
    assert manifest.version == f"seg-{manifest.segmenter.version}+cls-{manifest.classifier.version}"
    assert read_manifest(DEFAULT_MODELS_DIR)["version"] == manifest.version
    assert read_manifest(DEFAULT_MODELS_DIR)["classifier"]["threshold"] == manifest.classifier.threshold
    point = manifest.operating_point()
    assert point.threshold == manifest.classifier.threshold and point.model_version == manifest.classifier.version


def test_figures_measured_at_another_threshold_are_not_quoted(tmp_path):
    models = write_models(tmp_path, {"threshold": 0.30, "test_metrics": {
        "threshold": 0.23, "sensitivity": 0.92, "specificity": 0.64}})  # recalibrated after evaluation
    point = read_model_manifest(models).operating_point()
    assert point.threshold == 0.30
    assert point.sensitivity is None and point.specificity is None


def test_figures_measured_at_the_shipped_threshold_are_quoted_with_new_fields_kept(tmp_path):
    models = write_models(tmp_path, {"threshold": 0.23, "calibrated": True, "test_metrics": {
        "threshold": 0.23, "sensitivity": 0.92, "specificity": 0.64, "images": 1110, "n_melanomas": 118,
        "sensitivity_ci95": [0.86, 0.96]}})
    manifest = read_model_manifest(models)
    point = manifest.operating_point()
    assert (point.threshold, point.sensitivity, point.specificity) == (0.23, 0.92, 0.64)
    assert point.extra["n_melanomas"] == 118 and point.extra["sensitivity_ci95"] == [0.86, 0.96]
    assert manifest.classifier.get("calibrated") is True
    stored = point.as_dict()
    assert OperatingPoint.from_dict(json.loads(json.dumps(stored))) == point


def test_missing_or_malformed_metadata_says_what_is_missing(tmp_path):
    with pytest.raises(ModelsMissing, match="no segmenter model metadata"):
        read_model_manifest(tmp_path)
    (tmp_path / "segmenter.json").write_text(json.dumps(SEGMENTER))
    (tmp_path / "classifier.json").write_text(json.dumps({"name": "cls"}))
    with pytest.raises(ModelsMissing, match="classifier metadata is incomplete"):
        read_model_manifest(tmp_path)
