"""An ensemble classifier (#12): the score is one Platt calibration of the mean of the members' raw
logits, each member's input prepared as its own JSON says; every member file is SHA-256-verified;
the primary alone still gives the heat map and the embedding; a single-model manifest is unchanged.

The classifiers are two small Keras models made here (no ../shared); the segmenter is the shipped one.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import keras  # noqa: TID253 -- builds small Keras models; pinned requirement: missing fails, never skips
import numpy as np
import pytest

from ml.cli import main
from ml.contracts import read_model_manifest
from ml.ensemble import add_member
from ml.inference import DEFAULT_MODELS_DIR, Analyzer, ModelFileMismatch
from ml.preprocessing import center_crop_box, crop_resize, lesion_crop_box, shades_of_gray
from ml.synthetic import synthetic_capture
from tests.ml.test_model_integrity import assert_worker_refuses

CALIBRATOR = {"slope": 0.7, "intercept": -0.3, "method": "platt", "fitted_on": "val"}


def tiny_classifier(size: int, bias: float, seed: int) -> keras.Model:
    """The shipped classifiers' layer layout (normalize, a nested backbone, pool, melanoma) in miniature."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Normalization(mean=[127.5] * 3, variance=[127.5**2] * 3, name="normalize")(inputs)
    inner = keras.Input((size, size, 3))
    backbone = keras.Model(inner, keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inner), name="backbone")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(backbone(x))
    # A bias far from 0 gives each member a clearly different output, so a mean of probabilities
    # (instead of logits) or a missing member would change the score.
    outputs = keras.layers.Dense(1, activation="sigmoid", name="melanoma",
                                 bias_initializer=keras.initializers.Constant(bias),
                                 kernel_initializer=keras.initializers.RandomNormal(stddev=2.0, seed=seed))(x)
    return keras.Model(inputs, outputs)


def save(model: keras.Model, folder, stem: str, name: str, **meta) -> dict:
    path = folder / f"{stem}.keras"
    model.save(path)
    data = {"kind": "classifier", "name": name, "version": "t1", "file": path.name,
            "input_shape": list(model.input_shape[1:]), "threshold": 0.5,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), **meta}
    (folder / f"{stem}.json").write_text(json.dumps(data))
    return data


@pytest.fixture(scope="module")
def model_pair(tmp_path_factory):
    """A models folder with a single classifier (the primary: lesion crop, colour constancy, 4 flips)
    and, beside it, a second classifier's folder (centre crop, other size, no flips)."""
    root = tmp_path_factory.mktemp("ensemble")
    single = root / "single"
    single.mkdir()
    for name in ("segmenter.keras", "segmenter.json"):
        shutil.copy(DEFAULT_MODELS_DIR / name, single / name)
    primary = tiny_classifier(32, 2.0, seed=1)
    save(primary, single, "classifier", "classifier_big", tta="flip4", input={"crop": "lesion", "margin": 0.25,
                                                            "colour_constancy": True},
         calibrator={"slope": 1.3, "intercept": 0.2}, calibrated=True)
    other = root / "other"
    other.mkdir()
    member = tiny_classifier(48, -3.0, seed=2)
    save(member, other, "classifier", "classifier_small", tta=False, licence="test licence")
    return single, other, primary, member


@pytest.fixture
def ensemble_dir(model_pair, tmp_path):
    single, other, _, _ = model_pair
    models = tmp_path / "models"
    shutil.copytree(single, models)
    add_member(models, other, "small")
    meta = json.loads((models / "classifier.json").read_text())
    meta["calibrator"] = CALIBRATOR  # what `python -m ml calibrate` fits on val
    (models / "classifier.json").write_text(json.dumps(meta))
    return models


def images() -> list[np.ndarray]:
    return [synthetic_capture(seed, size=(150, 200)) for seed in range(3)]


def logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def expected_members(primary: keras.Model, member: keras.Model, pictures, masks) -> tuple[np.ndarray, np.ndarray]:
    """Each member's raw output as its JSON prescribes, computed here without the Analyzer."""
    crops = np.stack([crop_resize(shades_of_gray(img), lesion_crop_box(m, 0.25), (32, 32))
                      for img, m in zip(pictures, masks)]).astype(np.float32)
    flips = [crops, crops[:, :, ::-1], crops[:, ::-1], crops[:, ::-1, ::-1]]
    p1 = np.mean([primary.predict(v, verbose=0)[:, 0] for v in flips], axis=0)
    centre = np.stack([crop_resize(img, center_crop_box(img.shape[1], img.shape[0], 1.0), (48, 48))
                       for img in pictures]).astype(np.float32)
    p2 = member.predict(centre, verbose=0)[:, 0]
    return p1.astype(np.float64), p2.astype(np.float64)


def test_the_ensemble_manifest_names_its_members(ensemble_dir):
    meta = json.loads((ensemble_dir / "classifier.json").read_text())
    ensemble = meta["ensemble"]
    assert ensemble["combination"] == "mean_logit"
    assert [m["manifest"] for m in ensemble["members"]] == ["classifier.json", "classifier_small.json"]
    member = json.loads((ensemble_dir / "classifier_small.json").read_text())
    assert member["file"] == "classifier_small.keras" and member["licence"] == "test licence"
    assert ensemble["members"][1]["sha256"] == member["sha256"]
    # The primary's own calibration described another score: gone until calibrate fits the ensemble's.
    assert "test_metrics" not in meta and meta["calibrated"] is False
    manifest = read_model_manifest(ensemble_dir)
    assert manifest.classifier.version != "t1" and manifest.operating_point().sensitivity is None
    assert manifest.classifier.name == "ensemble_big_small"


def test_the_score_is_the_calibrated_mean_of_the_members_logits(model_pair, ensemble_dir):
    _, _, primary, member = model_pair
    analyzer = Analyzer(ensemble_dir)
    assert [m.name for m in analyzer.members] == ["classifier_small"]
    pictures = images()
    results = analyzer.analyze_batch(pictures, features=False)
    masks = [r.mask for r in results]
    assert all(m.any() for m in masks)
    p1, p2 = expected_members(primary, member, pictures, masks)
    assert np.all(np.abs(logit(p1) - logit(p2)) > 1)  # the members disagree: the combination matters
    z = (logit(p1) + logit(p2)) / 2
    expected = 1 / (1 + np.exp(-(CALIBRATOR["slope"] * z + CALIBRATOR["intercept"])))
    np.testing.assert_allclose([r.probability for r in results], expected, rtol=1e-4, atol=1e-6)
    # Uncalibrated (what calibrate fits on): the sigmoid of the mean logit.
    raw, _ = analyzer.classify_batch(pictures, masks, calibrated=False)
    np.testing.assert_allclose(raw, 1 / (1 + np.exp(-z)), rtol=1e-4, atol=1e-6)


def test_the_heat_map_and_embedding_stay_the_primary_models(model_pair, ensemble_dir):
    single, _, _, _ = model_pair
    pictures = images()
    alone = Analyzer(single).analyze_batch(pictures, features=False)
    both = Analyzer(ensemble_dir).analyze_batch(pictures, features=False)
    for a, b in zip(alone, both):
        np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-6)
        np.testing.assert_array_equal(a.heatmap, b.heatmap)
        assert a.probability != pytest.approx(b.probability, abs=1e-3)


def test_a_single_model_manifest_scores_as_before(model_pair):
    single, _, primary, member = model_pair
    analyzer = Analyzer(single)
    assert analyzer.members == []
    pictures = images()
    results = analyzer.analyze_batch(pictures, features=False)
    p1, _ = expected_members(primary, member, pictures, [r.mask for r in results])
    expected = 1 / (1 + np.exp(-(1.3 * logit(p1) + 0.2)))
    np.testing.assert_allclose([r.probability for r in results], expected, rtol=1e-4, atol=1e-6)


def test_a_tampered_member_file_is_refused(ensemble_dir):
    with (ensemble_dir / "classifier_small.keras").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelFileMismatch, match="classifier_small.keras: sha256 .* does not match"):
        Analyzer(ensemble_dir)


def test_a_member_swapped_with_its_json_is_refused(ensemble_dir, model_pair):
    """A different file with a JSON that matches it still differs from the hash classifier.json pins."""
    other = tiny_classifier(48, 1.0, seed=3)
    meta = save(other, ensemble_dir, "classifier_small", "classifier_small", tta=False)
    assert meta["sha256"] != json.loads((ensemble_dir / "classifier.json").read_text())["ensemble"]["members"][1][
        "sha256"]
    with pytest.raises(ModelFileMismatch, match="classifier_small.json: sha256 .* differs from the .* that classifier.json"):
        Analyzer(ensemble_dir)


def test_the_worker_logs_a_tampered_member_and_does_not_start(ensemble_dir, settings, caplog, monkeypatch):
    (ensemble_dir / "classifier_small.keras").write_bytes(b"not a model")
    assert_worker_refuses(ensemble_dir, "classifier_small.keras", settings, caplog, monkeypatch)


def test_ensemble_add_refuses_a_source_that_does_not_match_its_json(model_pair, tmp_path, capsys):
    single, other, _, _ = model_pair
    models, source = tmp_path / "models", tmp_path / "source"
    shutil.copytree(single, models)
    shutil.copytree(other, source)
    with (source / "classifier.keras").open("ab") as handle:
        handle.write(b"\0")
    before = (models / "classifier.json").read_bytes()
    assert main(["ensemble-add", str(source), "--name", "small", "--models", str(models)]) == 2
    assert "does not match" in capsys.readouterr().err
    assert (models / "classifier.json").read_bytes() == before and not (models / "classifier_small.keras").exists()


def test_colour_correcting_only_the_classifiers_box_gives_the_cut_of_the_corrected_image():
    """The illuminant is the whole image's; the correction per pixel, so the box alone is enough."""
    image = synthetic_capture(11, size=(120, 160))
    image[:, :30] = (250, 40, 40)  # a red strip outside the box still moves the illuminant
    box = (50, 20, 130, 100)
    region = shades_of_gray(image, region=box)
    assert np.array_equal(region, shades_of_gray(image)[20:100, 50:130])
    assert not np.array_equal(region, shades_of_gray(image[20:100, 50:130]))


@pytest.mark.parametrize("options", [{"crop": "lesion", "margin": 0.25, "colour_constancy": True},
                                     {"colour_constancy": True}, {"crop": "lesion", "margin": 0.5}])
def test_the_classifier_input_is_the_colour_corrected_image_cut_to_its_box_and_resized(options):
    """As the model card describes it: colour constancy on the whole image, then the crop (around
    the lesion, or the largest centred square), then the resize."""
    from ml.inference import ClassifierInput

    images = [synthetic_capture(s, size=(90, 120)) for s in (1, 2)]
    masks = [(img.mean(axis=-1) < 110).astype(np.uint8) for img in images]
    given = ClassifierInput(size=(32, 32), options=options)
    batch, boxes = given.prepare(images, masks)
    for img, mask, got, box in zip(images, masks, batch, boxes):
        expected_box = (lesion_crop_box(mask, options["margin"]) if options.get("crop") == "lesion"
                        else center_crop_box(img.shape[1], img.shape[0], 1.0))
        corrected = shades_of_gray(img) if options.get("colour_constancy") else img
        assert box == expected_box
        assert np.array_equal(got, crop_resize(corrected, expected_box, (32, 32)).astype(np.float32))


@pytest.mark.parametrize("crop", ["lesion", "centre"])
def test_training_prepares_the_classifier_input_the_same_way(crop):
    from ml.lite_training import LiteRunConfig, classifier_input

    image = synthetic_capture(4, size=(90, 120))
    mask = (image.mean(axis=-1) < 110).astype(np.uint8)
    config = LiteRunConfig(name="t", size=32, crop=crop, margin=0.25, colour_constancy=True)
    box = lesion_crop_box(mask if crop == "lesion" else np.zeros(mask.shape, np.uint8), 0.25)
    assert np.array_equal(classifier_input(image, mask, config), crop_resize(shades_of_gray(image), box, (32, 32)))
