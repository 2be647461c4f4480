"""The shipped models' inference functions compiled to TensorFlow Lite, for CPU workers.

TensorFlow's own CPU kernels are slow on the depthwise convolutions of EfficientNet-Lite0 and
MobileNet; TensorFlow Lite (LiteRT, the ai-edge-litert package) runs them with its XNNPACK kernels.
On our 2-core development VM the classifier's call (4 flipped views, with its class activation map
and embedding) took 2.7 times less this way, with outputs equal to within 2e-5, and the pipeline
benchmark analysed 2.1 to 2.4 times as many captures per minute (`python -m ml bench-inference`
reports both runtimes). A GPU worker keeps TensorFlow: XNNPACK is CPU only.

Each function is converted from the same Keras model in the worker process at load time (no second
model file to ship, verify or keep in step) and checked against TensorFlow on a fixed probe batch:
one that disagrees is not used (see Analyzer)."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

logger = logging.getLogger("ml.tflite_runtime")

# The shipped models' outputs (probabilities, normalised maps, embeddings) differed from TensorFlow's
# by 2e-5 at most: a converted function that differs by more than these computes something else.
PROBE_ATOL = 1e-4
PROBE_RTOL = 1e-4


class ConversionMismatch(RuntimeError):
    """A converted function's outputs differ from TensorFlow's on the probe batch."""


class LiteFunction:
    """One TensorFlow Lite interpreter behind a call that takes a float32 batch of any size and
    returns the function's outputs as numpy arrays, in the function's order."""

    def __init__(self, model_content: bytes, *, threads: int | None) -> None:
        from ai_edge_litert.interpreter import Interpreter  # tf.lite.Interpreter's successor

        self._interpreter = Interpreter(model_content=model_content, num_threads=threads)
        (self._input,) = self._interpreter.get_input_details()
        self._outputs = sorted(self._interpreter.get_output_details(), key=lambda o: output_position(o["name"]))
        self._shape: tuple[int, ...] | None = None
        # An interpreter holds its tensors between calls: one caller at a time.
        self._lock = threading.Lock()

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        batch = np.ascontiguousarray(batch, np.float32)
        with self._lock:
            if batch.shape != self._shape:
                self._interpreter.resize_tensor_input(self._input["index"], batch.shape)
                self._interpreter.allocate_tensors()
                self._shape = batch.shape
            self._interpreter.set_tensor(self._input["index"], batch)
            self._interpreter.invoke()
            return tuple(self._interpreter.get_tensor(o["index"]).copy() for o in self._outputs)


def output_position(name: str) -> int:
    """Where an output tensor stands in its function's return value, read from the name the
    converter gives it: "Identity", "Identity_1", … for a model with variables, "PartitionedCall:0",
    "PartitionedCall:1", … without. A wrong order fails the probe check (compiled)."""
    tail = name.replace(":", "_").rsplit("_", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else 0


def convert(function: Callable, input_shape: tuple[int, ...]) -> bytes:
    """`function` (TensorFlow ops on one float32 batch of images of `input_shape`, batch size free)
    as a TensorFlow Lite model."""
    import tensorflow as tf

    # The module tracks the function and, through it, the model's variables.
    module = tf.Module()
    module.function = tf.function(function, input_signature=[tf.TensorSpec([None, *input_shape], tf.float32)])
    concrete = module.function.get_concrete_function()
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete], module).convert()


def compiled(function: Callable, input_shape: tuple[int, ...], probe: np.ndarray, *, threads: int | None,
             cache: Path | None = None) -> LiteFunction:
    """`function` converted, after checking that it gives TensorFlow's outputs on `probe` (a batch
    of two or more, so that a batch-size mistake shows); ConversionMismatch where it does not.

    `cache`: a file named for everything the conversion depends on (see Analyzer). Converting the
    shipped models took 10 s of each worker's start on our 2 cores; a cached model is read instead,
    and checked on the probe like a fresh one: one that fails the check is converted afresh. A
    cache folder others could write to is not used at all (a planted model could be made to pass
    the probe)."""
    if cache is not None and not private_folder(cache.parent):
        cache = None
    if cache is not None:
        try:
            if cache.is_file():
                return checked(LiteFunction(cache.read_bytes(), threads=threads), function, probe)
        except (ConversionMismatch, OSError, ValueError, RuntimeError) as error:
            logger.warning("the cached LiteRT model %s is not used: %s", cache, error)
    content = convert(function, input_shape)
    lite = checked(LiteFunction(content, threads=threads), function, probe)
    if cache is not None:
        _write_whole(cache, content)
    return lite


def cache_dir() -> Path | None:
    """Where converted models are kept between worker starts: ML_CACHE_DIR, else the user's cache
    folder; none where ML_CACHE_DIR is "off"."""
    setting = os.environ.get("ML_CACHE_DIR", "").strip()
    if setting.lower() == "off":
        return None
    if setting:
        return Path(setting)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lesiontrack" / "litert"


def cache_name(function: Callable, size: tuple[int, int], model_sha256: str) -> str:
    """A converted call's file name, from everything its conversion depends on: the model file,
    the call's code, the input size and the converter's and runtime's versions."""
    import ai_edge_litert
    import keras
    import tensorflow as tf

    try:
        code = inspect.getsource(function)
    except (OSError, TypeError):  # no source to read (a frozen install): the name must do
        code = function.__qualname__
    parts = [model_sha256, code, repr(size), tf.__version__, keras.__version__,
             getattr(ai_edge_litert, "__version__", "")]
    return f"{hashlib.sha256(chr(0).join(parts).encode()).hexdigest()[:40]}.tflite"


def private_folder(folder: Path) -> bool:
    """Whether `folder` is this user's alone to write (or does not exist yet: it will be made so)."""
    try:
        found = folder.stat()
    except FileNotFoundError:
        return True
    except OSError as error:
        logger.warning("the LiteRT model cache %s is not used: %s", folder, error)
        return False
    if found.st_uid != os.getuid() or found.st_mode & 0o022:
        logger.warning("the LiteRT model cache %s is not used: others own it or may write to it", folder)
        return False
    return True


def checked(lite: LiteFunction, function: Callable, probe: np.ndarray) -> LiteFunction:
    """`lite` where it gives `function`'s outputs on `probe`; ConversionMismatch where it does not."""
    expected = function(probe)
    expected = [np.asarray(x) for x in (expected if isinstance(expected, tuple | list) else (expected,))]
    got = lite(probe)
    if len(got) != len(expected) or any(g.shape != e.shape for g, e in zip(got, expected)):
        raise ConversionMismatch(f"output shapes {[g.shape for g in got]} against {[e.shape for e in expected]}")
    if not all(np.allclose(g, e, rtol=PROBE_RTOL, atol=PROBE_ATOL) for g, e in zip(got, expected)):
        difference = max(float(np.max(np.abs(g - e))) for g, e in zip(got, expected))
        raise ConversionMismatch(f"outputs differ by {difference:.3g} (tolerance {PROBE_ATOL} + {PROBE_RTOL} of "
                                 "the value)")
    return lite


def _write_whole(path: Path, content: bytes) -> None:
    """Write the file whole or not at all (a worker killed mid-write leaves no half model); a cache
    that cannot be written (a read-only home) only costs the next start its conversion."""
    partial_name = None
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".partial-", delete=False) as partial:
            partial_name = partial.name
            partial.write(content)
        os.replace(partial_name, path)
    except OSError as error:
        logger.warning("the LiteRT model cache %s cannot be written: %s", path.parent, error)
        if partial_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(partial_name)
