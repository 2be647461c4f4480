"""The similar-case embedding comes from the classifier's own forward pass (#14, #15): it must be
the final Dense layer's input, as a separate penultimate-layer model computes it, averaged over
the same test-time flips as the score."""

from __future__ import annotations

import json
import shutil

import numpy as np

from ml.inference import DEFAULT_MODELS_DIR, Analyzer
from ml.preprocessing import load_rgb
from tests.factories import lesion_image, textured_lesion_image


def penultimate(analyzer: Analyzer, batch: np.ndarray) -> np.ndarray:
    import keras  # noqa: PLC0415 - the project keeps keras out of module imports

    dense = [layer for layer in analyzer.classifier.layers if isinstance(layer, keras.layers.Dense)][-1]
    return np.asarray(keras.Model(analyzer.classifier.inputs, dense.input)(batch, training=False), np.float32)


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def images(tmp_path) -> list[np.ndarray]:
    (tmp_path / "a.jpg").write_bytes(lesion_image((192, 144), radius=40))
    (tmp_path / "b.jpg").write_bytes(textured_lesion_image((240, 200), radius=50, seed=3))
    return [load_rgb(tmp_path / "a.jpg"), load_rgb(tmp_path / "b.jpg")]


def models_with_tta(tmp_path, tta: object) -> Analyzer:
    """The shipped models with the classifier's test-time augmentation set to ``tta``."""
    models = tmp_path / "models"
    shutil.copytree(DEFAULT_MODELS_DIR, models)
    meta = json.loads((models / "classifier.json").read_text())
    meta["tta"] = tta
    (models / "classifier.json").write_text(json.dumps(meta))
    return Analyzer(models)


def test_embedding_is_the_dense_layers_input_from_the_same_pass(tmp_path):
    analyzer = models_with_tta(tmp_path, False)
    pictures = images(tmp_path)
    out = analyzer.model_batch(pictures)
    batch, _ = analyzer.classifier_input(pictures, out.masks)
    expected = unit(penultimate(analyzer, batch))
    got = np.stack(out.embeddings)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(got[0], got[1], atol=1e-3)  # different images, different vectors


def test_with_flip_tta_the_embedding_averages_the_same_views_as_the_score(tmp_path):
    analyzer = models_with_tta(tmp_path, "flip4")
    pictures = images(tmp_path)
    out = analyzer.model_batch(pictures)
    batch, _ = analyzer.classifier_input(pictures, out.masks)
    views = [batch, batch[:, :, ::-1], batch[:, ::-1], batch[:, ::-1, ::-1]]
    expected = unit(np.mean([penultimate(analyzer, v) for v in views], axis=0))
    np.testing.assert_allclose(np.stack(out.embeddings), expected, atol=1e-4)
