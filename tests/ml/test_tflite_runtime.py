"""TensorFlow Lite for CPU workers (ml.tflite_runtime): a converted function gives TensorFlow's
outputs, in order, at any batch size; one that does not is refused, and the Analyzer then stays on
TensorFlow with the same results. Small Keras models made here (no ../shared)."""

from __future__ import annotations

import keras  # noqa: TID253 -- builds small Keras models; pinned requirement: missing fails, never skips
import numpy as np
import pytest

from ml import inference, tflite_runtime
from ml.tflite_runtime import ConversionMismatch, compiled, output_position


def small_model() -> keras.Model:
    """A depthwise and a pointwise convolution with two heads: a map and a pooled score."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(inputs)
    feature_map = keras.layers.Conv2D(5, 1, activation="relu")(x)
    score = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(feature_map))
    return keras.Model(inputs, [score, feature_map])


def images(count: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((count, 16, 16, 3)) * 255).astype(np.float32)


@pytest.mark.parametrize("threads", [1, None])
def test_a_converted_model_gives_tensorflows_outputs_in_order_at_every_batch_size(threads):
    model = small_model()

    def function(x):
        score, feature_map = model(x, training=False)
        return score[:, 0], feature_map, keras.ops.mean(feature_map, axis=(1, 2))

    lite = compiled(function, (16, 16, 3), images(2, seed=0), threads=threads)
    for count in (1, 5, 2, 5):  # growing, shrinking and back: the interpreter is resized each time
        batch = images(count, seed=count)
        expected = [np.asarray(x) for x in function(batch)]
        got = lite(batch)
        assert [g.shape for g in got] == [(count,), (count, 16, 16, 5), (count, 5)]
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


def test_a_conversion_that_computes_something_else_is_refused(monkeypatch):
    model = small_model()
    real_convert = tflite_runtime.convert
    # The converted model of a different function, as a converter bug would give.
    monkeypatch.setattr(tflite_runtime, "convert",
                        lambda function, shape: real_convert(lambda x: model(x * 1.01, training=False)[1], shape))
    with pytest.raises(ConversionMismatch, match="outputs differ by"):
        compiled(lambda x: model(x, training=False)[1], (16, 16, 3), images(2, seed=0), threads=1)


def test_outputs_in_the_wrong_shape_are_refused(monkeypatch):
    model = small_model()
    real_convert = tflite_runtime.convert
    monkeypatch.setattr(tflite_runtime, "convert",
                        lambda function, shape: real_convert(lambda x: model(x, training=False)[1], shape))
    with pytest.raises(ConversionMismatch, match="output shapes"):
        compiled(lambda x: model(x, training=False)[0], (16, 16, 3), images(2, seed=0), threads=1)


def test_a_cached_conversion_is_read_instead_of_converting_again(tmp_path, monkeypatch):
    model = small_model()
    cache = tmp_path / "cache" / "model.tflite"
    first = compiled(lambda x: model(x, training=False)[1], (16, 16, 3), images(2, seed=0), threads=1, cache=cache)
    assert cache.is_file() and not list(cache.parent.glob(".partial-*"))

    def no_converter(*args):
        raise AssertionError("converted again")

    monkeypatch.setattr(tflite_runtime, "convert", no_converter)
    again = compiled(lambda x: model(x, training=False)[1], (16, 16, 3), images(2, seed=0), threads=1, cache=cache)
    np.testing.assert_array_equal(again(images(3, seed=7))[0], first(images(3, seed=7))[0])


def test_a_cached_model_that_fails_the_probe_is_converted_afresh(tmp_path, caplog):
    model = small_model()
    cache = tmp_path / "model.tflite"
    compiled(lambda x: model(x * 1.01, training=False)[1], (16, 16, 3), images(2, seed=0), threads=1, cache=cache)
    stale = cache.read_bytes()
    lite = compiled(lambda x: model(x, training=False)[1], (16, 16, 3), images(2, seed=0), threads=1, cache=cache)
    assert "cached LiteRT model" in caplog.text and "outputs differ by" in caplog.text
    assert cache.read_bytes() != stale  # replaced by the fresh conversion
    batch = images(3, seed=5)
    np.testing.assert_allclose(lite(batch)[0], np.asarray(model(batch, training=False)[1]), rtol=1e-5, atol=1e-5)


def test_a_cache_that_cannot_be_written_only_costs_the_next_conversion(tmp_path, caplog):
    model = small_model()
    (tmp_path / "file").write_text("not a folder")
    lite = compiled(lambda x: model(x, training=False)[1], (16, 16, 3), images(2, seed=0), threads=1,
                    cache=tmp_path / "file" / "model.tflite")
    assert "cache" in caplog.text and "cannot be written" in caplog.text
    assert lite(images(1, seed=1))[0].shape == (1, 16, 16, 5)


@pytest.mark.parametrize(("name", "position"), [
    ("Identity", 0), ("Identity_1", 1), ("Identity_12", 12), ("PartitionedCall:2", 2),
    ("StatefulPartitionedCall:0", 0), ("output", 0)])
def test_output_position_reads_the_converters_names(name, position):
    assert output_position(name) == position


@pytest.mark.parametrize(("setting", "gpu", "runtime"), [
    (None, False, "tflite"), (None, True, "tensorflow"), ("auto", False, "tflite"), ("", False, "tflite"),
    ("tensorflow", False, "tensorflow"), ("TFLite", True, "tflite"), (" tflite ", False, "tflite")])
def test_the_runtime_is_tflite_on_a_cpu_unless_set(monkeypatch, setting, gpu, runtime):
    if setting is None:
        monkeypatch.delenv("ML_RUNTIME", raising=False)
    else:
        monkeypatch.setenv("ML_RUNTIME", setting)
    assert inference.runtime_wanted(gpu=gpu) == runtime


def test_an_unknown_runtime_is_refused_with_the_choices(monkeypatch):
    monkeypatch.setenv("ML_RUNTIME", "onnx")
    with pytest.raises(ValueError, match="ML_RUNTIME='onnx': expected one of auto, tensorflow, tflite"):
        inference.runtime_wanted(gpu=False)


@pytest.fixture(scope="module")
def shipped_results():
    """The shipped models' results on a few synthetic captures, on TensorFlow."""
    from ml.synthetic import synthetic_capture

    pictures = [synthetic_capture(i) for i in range(3)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ML_RUNTIME", "tensorflow")
        analyzer = inference.Analyzer()
    assert analyzer.runtime == "tensorflow"
    return pictures, analyzer.analyze_batch(pictures, features=False)


def test_the_shipped_models_give_the_same_results_on_tflite(monkeypatch, tmp_path, shipped_results):
    pictures, expected = shipped_results
    monkeypatch.setenv("ML_RUNTIME", "tflite")
    monkeypatch.setenv("ML_CACHE_DIR", str(tmp_path))
    analyzer = inference.Analyzer()
    assert analyzer.runtime == "tflite"
    assert analyzer.device_description == "CPU, LiteRT"
    assert len(list(tmp_path.glob("*.tflite"))) == 3  # segmenter, classifier, ensemble member

    def no_converter(*args):
        raise AssertionError("converted again")

    # The next worker start reads the three from the cache and gives the same results.
    monkeypatch.setattr(tflite_runtime, "convert", no_converter)
    restarted = inference.Analyzer()
    assert restarted.runtime == "tflite"
    for got, again in zip(analyzer.analyze_batch(pictures, features=False),
                          restarted.analyze_batch(pictures, features=False)):
        assert got.probability == again.probability
    for got, want in zip(analyzer.analyze_batch(pictures, features=False), expected):
        assert got.probability == pytest.approx(want.probability, abs=1e-5)
        assert np.mean(got.mask != want.mask) < 1e-3  # a pixel on the threshold may flip
        np.testing.assert_allclose(got.embedding, want.embedding, atol=1e-4)
        # The heat map the clinician sees: the class activation map blended over the image.
        assert np.abs(got.heatmap.astype(int) - want.heatmap.astype(int)).max() <= 2


@pytest.mark.parametrize("failing_call", [0, 1, 2], ids=["segmenter", "classifier", "ensemble member"])
def test_a_failed_conversion_leaves_every_model_on_tensorflow(monkeypatch, caplog, shipped_results, failing_call):
    """Whichever conversion fails, the calls converted before it are not used either."""
    pictures, expected = shipped_results
    real_compiled = tflite_runtime.compiled
    calls = []

    def failing_at_one(*args, **kwargs):
        calls.append(len(calls))
        if len(calls) - 1 == failing_call:
            raise ConversionMismatch("outputs differ by 0.5")
        return real_compiled(*args, **kwargs)

    monkeypatch.setattr(tflite_runtime, "compiled", failing_at_one)
    monkeypatch.setenv("ML_RUNTIME", "tflite")
    analyzer = inference.Analyzer()
    assert len(analyzer.members) == 1 and calls == list(range(failing_call + 1))
    assert analyzer.runtime == "tensorflow" and analyzer.device_description == "CPU, TensorFlow"
    assert "run on TensorFlow, not TensorFlow Lite: outputs differ by 0.5" in caplog.text
    segment, classify, members = analyzer.tensorflow_calls
    assert analyzer._segment is segment and analyzer._classify_with_cam is classify
    assert [m.predict for m in analyzer.members] == members
    got = analyzer.analyze_batch(pictures, features=False)
    assert [g.probability for g in got] == pytest.approx([e.probability for e in expected], abs=1e-6)


@pytest.mark.parametrize("setting", ["0", "-2", "two", "1.5"])
def test_a_thread_count_that_is_not_a_positive_whole_number_is_refused(monkeypatch, setting):
    monkeypatch.setenv("ML_THREADS", setting)
    with pytest.raises(ValueError, match=f"ML_THREADS='{setting}': expected a whole number of at least 1"):
        inference.Analyzer()


def test_the_cache_name_changes_with_the_model_file_the_code_and_the_size():
    def plain(x):
        return x

    def doubled(x):
        return x * 2

    names = {tflite_runtime.cache_name(plain, (8, 8), "a" * 64), tflite_runtime.cache_name(plain, (8, 8), "b" * 64),
             tflite_runtime.cache_name(doubled, (8, 8), "a" * 64), tflite_runtime.cache_name(plain, (9, 8), "a" * 64)}
    assert len(names) == 4
    assert tflite_runtime.cache_name(plain, (8, 8), "a" * 64) in names  # the same inputs, the same name


@pytest.mark.parametrize(("setting", "expected"), [("off", None), ("OFF", None), ("/srv/litert", "/srv/litert")])
def test_the_cache_folder_is_ml_cache_dir_or_none(monkeypatch, setting, expected):
    monkeypatch.setenv("ML_CACHE_DIR", setting)
    found = tflite_runtime.cache_dir()
    assert (None if found is None else str(found)) == expected


def test_without_ml_cache_dir_the_cache_is_in_the_users_cache_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("ML_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert tflite_runtime.cache_dir() == tmp_path / "lesiontrack" / "litert"


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o757])
def test_a_cache_folder_others_may_write_to_is_not_used(tmp_path, caplog, mode):
    """A model planted there could be made to pass the probe: such a folder is neither read nor written."""
    model = small_model()
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    planted = shared / "model.tflite"
    planted.write_bytes(b"planted")
    lite = compiled(lambda x: model(x, training=False)[1], (16, 16, 3), images(2, seed=0), threads=1, cache=planted)
    assert "others own it or may write to it" in caplog.text
    assert planted.read_bytes() == b"planted" and lite(images(1, seed=1))[0].shape == (1, 16, 16, 5)


def test_a_private_cache_folder_is_made_for_this_user_alone(tmp_path):
    model = small_model()
    cache = tmp_path / "made" / "model.tflite"
    compiled(lambda x: model(x, training=False)[1], (16, 16, 3), images(2, seed=0), threads=1, cache=cache)
    assert cache.is_file() and tflite_runtime.private_folder(cache.parent)
    assert cache.parent.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(("device", "runtime", "described"), [
    ("CPU", "tflite", "CPU, LiteRT"), ("GPU", "tflite", "CPU, LiteRT"), ("GPU", "tensorflow", "GPU, TensorFlow"),
    ("CPU", "tensorflow", "CPU, TensorFlow")])
def test_each_analysis_records_where_the_models_ran(device, runtime, described):
    analyzer = object.__new__(inference.Analyzer)  # the description alone, without loading models
    analyzer.device, analyzer.runtime = device, runtime
    assert analyzer.device_description == described
