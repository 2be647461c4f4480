"""Workers refuse a model file whose SHA-256 differs from its manifest."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from ml.inference import DEFAULT_MODELS_DIR, Analyzer, ModelFileMismatch, ensemble_members, verify_model_file


@pytest.fixture
def models_copy(tmp_path):
    target = tmp_path / "models"
    shutil.copytree(DEFAULT_MODELS_DIR, target)
    return target


def test_shipped_models_match_their_manifests():
    for kind in ("segmenter", "classifier"):
        meta = json.loads((DEFAULT_MODELS_DIR / f"{kind}.json").read_text())
        assert verify_model_file(DEFAULT_MODELS_DIR, meta).name == meta["file"]
    # The shipped classifier is an ensemble (#12): every member file is in the folder and verified.
    members = ensemble_members(DEFAULT_MODELS_DIR, json.loads((DEFAULT_MODELS_DIR / "classifier.json").read_text()))
    assert members
    for meta in members:
        assert verify_model_file(DEFAULT_MODELS_DIR, meta).name == meta["file"] and meta.get("licence")


def test_a_changed_model_file_is_refused(models_copy):
    meta = json.loads((models_copy / "classifier.json").read_text())
    with (models_copy / meta["file"]).open("ab") as handle:
        handle.write(b"\0")  # one byte appended: a truncated or tampered copy looks the same to a hash
    with pytest.raises(ModelFileMismatch, match="does not match the manifest"):
        verify_model_file(models_copy, meta)
    with pytest.raises(ModelFileMismatch):
        Analyzer(models_copy)


def test_a_manifest_without_a_hash_is_refused(models_copy):
    meta = json.loads((models_copy / "segmenter.json").read_text())
    meta.pop("sha256")
    with pytest.raises(ModelFileMismatch, match="no sha256"):
        verify_model_file(models_copy, meta)


def assert_worker_refuses(models_dir, file_name: str, settings, caplog, monkeypatch) -> None:
    """A worker pointed at ``models_dir`` does not start and logs one clear line naming ``file_name``."""
    from lesions import worker

    settings.ML_MODELS_DIR = models_dir
    monkeypatch.setattr(worker, "_analyzer", None)
    with caplog.at_level(logging.CRITICAL, logger="lesions.worker"), pytest.raises(ModelFileMismatch):
        worker.load_analyzer()
    assert any("refusing to load the models" in r.getMessage() and file_name in r.getMessage()
               for r in caplog.records)


def test_the_worker_logs_a_clear_line_and_does_not_start(models_copy, settings, caplog, monkeypatch):
    meta_path = models_copy / "segmenter.json"
    meta = json.loads(meta_path.read_text())
    meta["sha256"] = "0" * 64
    meta_path.write_text(json.dumps(meta))
    assert_worker_refuses(models_copy, "segmenter.keras", settings, caplog, monkeypatch)
