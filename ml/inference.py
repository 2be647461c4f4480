"""The inference API the workers and ``python -m ml predict`` use: load once, predict many.

Models are the exported ``segmenter.keras`` and ``classifier.keras`` with a JSON file each
(input size, threshold, version). Normalisation is inside the models; this module only
resizes, so training and inference cannot drift apart.

The melanoma score may come from an ensemble: when ``classifier.json`` has an ``ensemble`` key,
its other members (each a ``.keras`` file with its own JSON: input size, crop, colour constancy,
TTA) are loaded beside the primary classifier (``classifier.keras``), and the score is the mean
of all members' raw logits, calibrated once (the ``calibrator`` of ``classifier.json``). The
primary alone gives the heat map (CAM) and the similar-case embedding, so neither changes
with the ensemble.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml import tflite_runtime
from ml.contracts import DEFAULT_MODELS_DIR, FeatureRecord, ModelsMissing, read_model_manifest
from ml.features import measure
from ml.postprocess import heatmap_overlay, overlay_outline, postprocess_mask, resize_probability
from ml.preprocessing import apply_mask, center_crop_box, classifier_view, lesion_crop_box, resize_image
from ml.score_calibration import PlattScaling, mean_logit
from ml.synthetic import synthetic_capture

logger = logging.getLogger("ml.inference")

__all__ = ["DEFAULT_MODELS_DIR", "Analyzer", "ImageAnalysis", "ModelsMissing", "read_manifest"]

# How an ensemble's members are combined; the only one there is (see mean_logit).
ENSEMBLE_COMBINATIONS = ("mean_logit",)


class ModelFileMismatch(RuntimeError):
    """A model file whose SHA-256 differs from its manifest: a broken copy or a file swapped by hand."""


def verify_model_file(models_dir: Path, meta: dict) -> Path:
    """The model file named by ``meta``, after checking its SHA-256 against the manifest."""
    path = models_dir / meta["file"]
    expected = meta.get("sha256")
    if not expected:
        raise ModelFileMismatch(f"{path.name}: the manifest records no sha256; refusing to load an unverified model")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise ModelFileMismatch(f"{path.name}: sha256 {digest} does not match the manifest's {expected}; "
                                "refusing to load it (re-ship the model or restore the file)")
    return path


def ensemble_members(models_dir: Path, classifier: dict) -> list[dict]:
    """The JSON of each non-primary ensemble member named by ``classifier`` (the classifier.json
    dict), in order; [] for a single classifier. The member's sha256 must agree with the one the
    ensemble entry pins, so a member file and its JSON swapped together are refused too."""
    ensemble = classifier.get("ensemble")
    if not ensemble:
        return []
    if ensemble.get("combination") not in ENSEMBLE_COMBINATIONS:
        raise ModelsMissing(f"unknown ensemble combination {ensemble.get('combination')!r}; "
                            f"this code knows {', '.join(ENSEMBLE_COMBINATIONS)}")
    members = []
    for entry in ensemble["members"]:
        if entry.get("primary"):
            continue  # classifier.json itself
        path = models_dir / entry["manifest"]
        if not path.is_file():
            raise ModelsMissing(f"no metadata for ensemble member {entry.get('name')!r} at {path}")
        meta = json.loads(path.read_text())
        if meta.get("sha256") != entry.get("sha256"):
            raise ModelFileMismatch(f"{path.name}: sha256 {meta.get('sha256')} differs from the {entry.get('sha256')} "
                                    "that classifier.json's ensemble pins; refusing to load it")
        members.append(meta)
    return members


@dataclass(frozen=True)
class ClassifierInput:
    """How one classifier's input is prepared from the images (and masks), as its JSON says."""

    size: tuple[int, int]
    variant: str = "image"  # "image", or a masked variant
    options: dict = field(default_factory=dict)  # the JSON's "input": crop, margin, colour_constancy
    tta: bool | str = False  # False, True (horizontal flip) or "flip4"

    @classmethod
    def from_meta(cls, meta: dict) -> ClassifierInput:
        return cls(size=tuple(meta["input_shape"][:2]), variant=meta.get("variant", "image"),
                   options=meta.get("input") or {}, tta=meta.get("tta", False))

    @property
    def needs_mask(self) -> bool:
        return self.variant != "image" or self.options.get("crop") == "lesion"

    def boxes(self, images: list[np.ndarray], masks: list[np.ndarray]) -> list[tuple[int, int, int, int]]:
        """The (left, top, right, bottom) region of each image the classifier sees."""
        if self.options.get("crop") == "lesion":
            return [lesion_crop_box(m, float(self.options.get("margin", 0.25))) for m in masks]
        aspect = self.size[1] / self.size[0]
        return [center_crop_box(img.shape[1], img.shape[0], aspect) for img in images]

    def prepare(self, images: list[np.ndarray], masks: list[np.ndarray]
                ) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
        """The batch the classifier sees (masked for mask variants, colour-corrected, cropped,
        resized) and the box of each image it was cut from."""
        if self.variant != "image":
            images = [apply_mask(img, m) for img, m in zip(images, masks)]
        boxes = self.boxes(images, masks)  # from the shapes and masks alone
        colour_constancy = bool(self.options.get("colour_constancy"))
        batch = np.stack([classifier_view(img, box, self.size, colour_constancy=colour_constancy)
                          for img, box in zip(images, boxes)])
        return batch.astype(np.float32), boxes

    def views(self, batch: np.ndarray) -> list[np.ndarray]:
        """The batch and its test-time flips, in the order the outputs are averaged."""
        views = [batch]
        if self.tta:
            views.append(batch[:, :, ::-1])
        if self.tta == "flip4":
            views += [batch[:, ::-1], batch[:, ::-1, ::-1]]
        return views


@dataclass
class EnsembleMember:
    """A classifier beside the primary one: only its raw melanoma output is used."""

    name: str
    model: object  # keras.Model
    input: ClassifierInput
    predict: object  # compiled call of the model
    sha256: str = ""  # of its file, as its JSON pins it

    def raw_scores(self, images: list[np.ndarray], masks: list[np.ndarray]) -> np.ndarray:
        """The member's uncalibrated output per image, averaged over its own test-time flips."""
        batch, _ = self.input.prepare(images, masks)
        views = self.input.views(batch)
        out = np.asarray(self.predict(np.concatenate(views) if len(views) > 1 else batch), np.float64)
        return out.reshape(len(views), len(images)).mean(axis=0)


def read_manifest(models_dir: str | Path = DEFAULT_MODELS_DIR) -> dict:
    """The shipped models' metadata as plain dicts (kept for callers of this API); the typed
    reader is ml.contracts.read_model_manifest, which the web process uses."""
    return read_model_manifest(models_dir).as_dict()


@dataclass
class ImageAnalysis:
    mask: np.ndarray  # H×W uint8 0/1 at the image's own size
    probability: float
    overlay: np.ndarray  # H×W×3 uint8, outline drawn
    heatmap: np.ndarray | None  # H×W×3 uint8, class activation map blended over the image
    features: FeatureRecord | dict  # empty when no lesion was found or features were not asked for
    timings: dict[str, float] = field(default_factory=dict)
    # The classifier's image embedding: the input of its final Dense layer, L2-normalised
    # (float32). For finding similar images; None where the classifier has no Dense head.
    embedding: np.ndarray | None = None


@dataclass
class ModelOutputs:
    """What the two models give for a batch, before the per-image work (features, rendering)."""

    masks: list[np.ndarray]
    probabilities: list[float]
    cams: list[np.ndarray]
    boxes: list[tuple[int, int, int, int]]  # the region of each image the classifier saw (for its CAM)
    timings: dict[str, float]
    embeddings: list[np.ndarray | None] = field(default_factory=list)


def _threads() -> int | None:
    """ML_THREADS, the CPU threads each worker process gives the models; None where unset."""
    raw = os.environ.get("ML_THREADS", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"ML_THREADS={raw!r}: expected a whole number of at least 1")
    return int(raw)


def _configure_threads() -> None:
    threads = _threads()
    if threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


RUNTIMES = ("auto", "tensorflow", "tflite")
RUNTIME_NAMES = {"tensorflow": "TensorFlow", "tflite": "LiteRT"}


def runtime_wanted(*, gpu: bool) -> str:
    """What runs the models: ML_RUNTIME, where "auto" (the default) is TensorFlow Lite's CPU
    kernels without a GPU and TensorFlow with one."""
    wanted = os.environ.get("ML_RUNTIME", "auto").strip().lower() or "auto"
    if wanted not in RUNTIMES:
        raise ValueError(f"ML_RUNTIME={wanted!r}: expected one of {', '.join(RUNTIMES)}")
    if wanted == "auto":
        return "tensorflow" if gpu else "tflite"
    return wanted


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):  # Linux: the cores this process may run on
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def litert_probe(size: tuple[int, int]) -> np.ndarray:
    """The batch a converted model is checked on, at `size`: a synthetic picture of a lesion on skin
    (the kind of input the models were made for) and uniform noise (every input value)."""
    noise = np.random.default_rng(0).random((*size, 3)) * 255
    return np.stack([resize_image(synthetic_capture(0), size, crop=True), noise]).astype(np.float32)


class Analyzer:
    """Segmenter + classifier + ABCD, loaded once per process."""

    def __init__(self, models_dir: str | Path = DEFAULT_MODELS_DIR, *, mixed_precision: bool = False) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras
        import tensorflow as tf

        _configure_threads()
        self.model_manifest = read_model_manifest(models_dir)
        self.manifest = self.model_manifest.as_dict()
        models_dir = Path(models_dir)
        gpus = tf.config.list_physical_devices("GPU")
        self.device = "GPU" if gpus else "CPU"
        if mixed_precision and gpus:
            keras.mixed_precision.set_global_policy("mixed_float16")
        self.segmenter = keras.saving.load_model(verify_model_file(models_dir, self.manifest["segmenter"]),
                                                 compile=False)
        self.classifier = keras.saving.load_model(verify_model_file(models_dir, self.manifest["classifier"]),
                                                  compile=False)
        cls = self.manifest["classifier"]
        # Each ensemble member's file is SHA-256-verified like the primary's: one bad file refuses all.
        self.members: list[EnsembleMember] = []
        for meta in ensemble_members(models_dir, cls):
            model = keras.saving.load_model(verify_model_file(models_dir, meta), compile=False)
            self.members.append(EnsembleMember(meta["name"], model, ClassifierInput.from_meta(meta), tf.function(
                lambda x, m=model: m(x, training=False), reduce_retracing=True), meta["sha256"]))
        self.seg_size = tuple(self.manifest["segmenter"]["input_shape"][:2])
        self.seg_crop = bool(self.manifest["segmenter"].get("crop", False))
        # How the primary classifier's input is prepared (lesion-centred crop, colour constancy) and
        # test-time augmentation (flips averaged, when the shipped metadata asks), as trained.
        self.primary_input = ClassifierInput.from_meta(cls)
        self.cls_size = self.primary_input.size
        self.variant = self.primary_input.variant
        self.cls_input = self.primary_input.options
        self.tta = self.primary_input.tta
        self.threshold = self.model_manifest.classifier.threshold
        # The shipped score's calibration (of the members' mean logit when there is an ensemble).
        self.calibrator = PlattScaling.from_dict(cls.get("calibrator"))
        self.calibrated = bool(cls.get("calibrated", False))
        self.seg_tta = bool(self.manifest["segmenter"].get("tta", False))
        self._segment = tf.function(lambda x: self.segmenter(x, training=False), reduce_retracing=True)
        self._classify_with_cam = tf.function(self._classify_and_cam, reduce_retracing=True)
        self.runtime = "tensorflow"
        # TensorFlow's compiled calls stay reachable: the inference benchmark compares them with LiteRT's.
        self.tensorflow_calls = (self._segment, self._classify_with_cam, [m.predict for m in self.members])
        if runtime_wanted(gpu=bool(gpus)) == "tflite":
            self._use_tflite()

    def _use_tflite(self) -> None:
        """Run the three functions on TensorFlow Lite (ml.tflite_runtime), each checked against
        TensorFlow on a probe batch; where any conversion fails or disagrees, all stay on TensorFlow."""
        # Unset, TensorFlow takes every core the process may use; LiteRT would take one.
        threads = _threads() or _usable_cores()
        try:
            cache_dir = tflite_runtime.cache_dir()
        except RuntimeError as error:  # no home folder to find a cache in: convert at each start
            logger.warning("no LiteRT model cache: %s", error)
            cache_dir = None

        def compiled(function, size: tuple[int, int], model_sha256: str):
            cache = None if cache_dir is None else cache_dir / tflite_runtime.cache_name(function, size, model_sha256)
            return tflite_runtime.compiled(function, (*size, 3), litert_probe(size), threads=threads, cache=cache)

        try:
            segment = compiled(lambda x: self.segmenter(x, training=False), self.seg_size,
                               self.manifest["segmenter"]["sha256"])
            classify = compiled(self._classify_and_cam, self.cls_size, self.manifest["classifier"]["sha256"])
            members = [compiled(lambda x, m=member.model: m(x, training=False), member.input.size, member.sha256)
                       for member in self.members]
        except Exception as error:  # any failure of the converter: slower, never wrong
            logger.warning("the models run on TensorFlow, not TensorFlow Lite: %s", error)
            return
        self._segment = lambda x: segment(x)[0]
        self._classify_with_cam = classify
        for member, predict in zip(self.members, members):
            member.predict = lambda x, p=predict: p(x)[0]
        self.runtime = "tflite"

    @property
    def device_description(self) -> str:
        """Where the models ran, as each analysis records it: "CPU, LiteRT", "GPU, TensorFlow"."""
        device = "CPU" if self.runtime == "tflite" else self.device  # LiteRT runs on the CPU, GPU or not
        return f"{device}, {RUNTIME_NAMES[self.runtime]}"

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def names(self) -> tuple[str, str]:
        return self.manifest["segmenter"]["name"], self.manifest["classifier"]["name"]

    def _classify_and_cam(self, x):
        """Probability, a class activation map (Zhou et al., CVPR 2016) and the pooled features.

        With global average pooling followed by one dense unit, the CAM is exact: the
        dense weights applied to the last feature map. It equals Grad-CAM for this head.
        The pooled features are the dense unit's input (dropout is off at inference): the image
        embedding for similar-case search, taken from the same forward pass.
        """
        import keras
        import tensorflow as tf

        model = self.classifier
        h = model.get_layer("normalize")(x)
        backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
        fmap = backbone(h, training=False)
        pooled = model.get_layer("pool")(fmap)
        dense = model.get_layer("melanoma")
        prob = dense(pooled)
        kernel = tf.cast(dense.kernel, fmap.dtype)
        cam = tf.nn.relu(tf.tensordot(fmap, kernel[:, 0], axes=[[3], [0]]))
        cam = cam / (tf.reduce_max(cam, axis=[1, 2], keepdims=True) + 1e-6)
        return prob[:, 0], cam, pooled

    def segment_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        batch = np.stack([resize_image(img, self.seg_size, crop=self.seg_crop) for img in images]).astype(np.float32)
        if self.seg_tta:
            # One call on the batch and its mirror image; the mirrored maps are flipped back and averaged.
            both = np.asarray(self._segment(np.concatenate([batch, batch[:, :, ::-1]])))
            probs = (both[: len(images)] + both[len(images):, :, ::-1]) / 2
        else:
            probs = np.asarray(self._segment(batch))
        return [postprocess_mask(p, img.shape[:2]) for p, img in zip(probs, images)]

    @property
    def needs_mask(self) -> bool:
        """Whether any classifier's input depends on the segmenter's mask."""
        return any(i.needs_mask for i in [self.primary_input, *(m.input for m in self.members)])

    def classifier_boxes(self, images: list[np.ndarray], masks: list[np.ndarray]) -> list[tuple[int, int, int, int]]:
        """The (left, top, right, bottom) region of each image the primary classifier sees."""
        return self.primary_input.boxes(images, masks)

    def classify_batch(self, images: list[np.ndarray], masks: list[np.ndarray], *,
                       calibrated: bool = True, batch: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Melanoma outputs (calibrated when the manifest carries a calibrator, unless
        ``calibrated=False``, which fitting the calibrator needs) and CAMs on each box. ``batch``:
        the input already prepared by ``classifier_input``."""
        prob, cam, _ = self._classify_embed_batch(images, masks, calibrated=calibrated, batch=batch)
        return prob, cam

    def _classify_embed_batch(self, images: list[np.ndarray], masks: list[np.ndarray], *, calibrated: bool = True,
                              batch: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Outputs, CAMs and L2-normalised embeddings from one primary classifier call on the batch
        and its test-time flips (score and embedding averaged over the same views; the CAM is the
        unflipped view's), and one call of each other ensemble member on its own input: the score
        is then the mean of the members' raw logits."""
        if batch is None:
            batch, _ = self.classifier_input(images, masks)
        n = len(images)
        views = self.primary_input.views(batch)
        prob, cam, pooled = self._classify_with_cam(np.concatenate(views) if len(views) > 1 else batch)
        prob = np.asarray(prob).astype(float).reshape(len(views), n).mean(axis=0)
        cam = np.asarray(cam)[:n]
        vectors = np.asarray(pooled, np.float32).reshape(len(views), n, -1).mean(axis=0)
        vectors = vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12)
        if self.members:
            prob = mean_logit([prob, *(m.raw_scores(images, masks) for m in self.members)])
        if calibrated and self.calibrator is not None:
            prob = self.calibrator.apply(prob)
        return prob, cam, vectors

    def classifier_input(self, images: list[np.ndarray], masks: list[np.ndarray]
                         ) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
        """The batch the primary classifier sees and the box of each image it was cut from."""
        return self.primary_input.prepare(images, masks)

    def model_batch(self, images: list[np.ndarray]) -> ModelOutputs:
        """Segmentation and classification of a batch: the model calls, one each for the whole batch."""
        t0 = time.perf_counter()
        masks = self.segment_batch(images)
        t1 = time.perf_counter()
        # Prepared once: the colour correction, crop and resize serve the score and the embedding.
        batch, boxes = self.classifier_input(images, masks)
        probs, cams, embeddings = self._classify_embed_batch(images, masks, batch=batch)
        t2 = time.perf_counter()
        return ModelOutputs(masks, [float(p) for p in probs], list(cams), list(boxes), {
            "segmentation_s": (t1 - t0) / len(images), "classification_s": (t2 - t1) / len(images),
            "batch_size": len(images)}, embeddings=list(embeddings))

    def finish_image(self, image: np.ndarray, mask: np.ndarray, probability: float, cam: np.ndarray,
                     box: tuple[int, int, int, int], mm_per_pixel: float | None = None, *,
                     model_timings: dict[str, float] | None = None, features: bool = True,
                     heatmaps: bool = True, embedding: np.ndarray | None = None) -> ImageAnalysis:
        """The per-image work after the models: ABCD features, the outline and the heat map."""
        f0 = time.perf_counter()
        feats = measure(image, mask, mm_per_pixel) if features and mask.any() else {}
        f1 = time.perf_counter()
        overlay = overlay_outline(image, mask)
        heat = heatmap_overlay(image, _uncrop_cam(cam, image.shape[:2], box)) if heatmaps else None
        f2 = time.perf_counter()
        return ImageAnalysis(mask=mask, probability=float(probability), overlay=overlay, heatmap=heat,
                             features=feats, embedding=embedding,
                             timings={**(model_timings or {}), "features_s": f1 - f0, "rendering_s": f2 - f1})

    def analyze_batch(self, images: list[np.ndarray], mm_per_pixel: list[float | None] | None = None,
                      *, features: bool = True, heatmaps: bool = True) -> list[ImageAnalysis]:
        spacing = mm_per_pixel or [None] * len(images)
        out = self.model_batch(images)
        timings = {k: v for k, v in out.timings.items() if k != "batch_size"}
        return [self.finish_image(img, mask, prob, cam, box, mm, model_timings=timings, features=features,
                                  heatmaps=heatmaps, embedding=vector)
                for img, mask, prob, cam, box, mm, vector in zip(images, out.masks, out.probabilities, out.cams,
                                                                 out.boxes, spacing, out.embeddings)]

    def analyze(self, image: np.ndarray, mm_per_pixel: float | None = None) -> ImageAnalysis:
        return self.analyze_batch([image], [mm_per_pixel])[0]


def _uncrop_cam(cam: np.ndarray, image_size: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """Place a CAM computed on the classifier's box back onto the full image (zeros outside it)."""
    height, width = image_size
    left, top, right, bottom = box
    full = np.zeros((height, width), np.float32)
    full[top:bottom, left:right] = resize_probability(cam, (bottom - top, right - left))
    return full
