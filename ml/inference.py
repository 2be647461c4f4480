"""The inference API the workers and ``python -m ml predict`` use: load once, predict many.

Models are the exported ``segmenter.keras`` and ``classifier.keras`` with a JSON file each
(input size, threshold, version). Normalisation is inside the models; this module only
resizes, so training and inference cannot drift apart.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml.contracts import DEFAULT_MODELS_DIR, FeatureRecord, ModelsMissing, read_model_manifest
from ml.features import measure
from ml.postprocess import heatmap_overlay, overlay_outline, postprocess_mask, resize_probability
from ml.preprocessing import apply_mask, center_crop_box, crop_resize, lesion_crop_box, resize_image, shades_of_gray
from ml.score_calibration import PlattScaling

__all__ = ["DEFAULT_MODELS_DIR", "Analyzer", "ImageAnalysis", "ModelsMissing", "read_manifest"]


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


def _configure_threads() -> None:
    threads = os.environ.get("ML_THREADS")
    if threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(int(threads))


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
        self.seg_size = tuple(self.manifest["segmenter"]["input_shape"][:2])
        self.seg_crop = bool(self.manifest["segmenter"].get("crop", False))
        self.cls_size = tuple(cls["input_shape"][:2])
        self.threshold = self.model_manifest.classifier.threshold
        self.variant = cls.get("variant", "image")
        # How the classifier's input is prepared (lesion-centred crop, colour constancy), as trained.
        self.cls_input = cls.get("input") or {}
        self.calibrator = PlattScaling.from_dict(cls.get("calibrator"))
        self.calibrated = bool(cls.get("calibrated", False))
        # Test-time augmentation: average the classifier over flips of the input when the
        # shipped metadata asks for it (the threshold was calibrated the same way).
        self.tta = cls.get("tta", False)
        self.seg_tta = bool(self.manifest["segmenter"].get("tta", False))
        self._segment = tf.function(lambda x: self.segmenter(x, training=False), reduce_retracing=True)
        self._classify_with_cam = tf.function(self._classify_and_cam, reduce_retracing=True)

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
            both = self._segment(np.concatenate([batch, batch[:, :, ::-1]])).numpy()
            probs = (both[: len(images)] + both[len(images):, :, ::-1]) / 2
        else:
            probs = self._segment(batch).numpy()
        return [postprocess_mask(p, img.shape[:2]) for p, img in zip(probs, images)]

    def classifier_boxes(self, images: list[np.ndarray], masks: list[np.ndarray]) -> list[tuple[int, int, int, int]]:
        """The (left, top, right, bottom) region of each image the classifier sees."""
        if self.cls_input.get("crop") == "lesion":
            return [lesion_crop_box(m, float(self.cls_input.get("margin", 0.25))) for m in masks]
        aspect = self.cls_size[1] / self.cls_size[0]
        return [center_crop_box(img.shape[1], img.shape[0], aspect) for img in images]

    def classify_batch(self, images: list[np.ndarray], masks: list[np.ndarray], *,
                       calibrated: bool = True, batch: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Melanoma outputs (calibrated when the manifest carries a calibrator, unless
        ``calibrated=False``, which fitting the calibrator needs) and CAMs on each box. ``batch``:
        the input already prepared by ``classifier_input``."""
        prob, cam, _ = self._classify_embed_batch(images, masks, calibrated=calibrated, batch=batch)
        return prob, cam

    def _classify_embed_batch(self, images: list[np.ndarray], masks: list[np.ndarray], *, calibrated: bool = True,
                              batch: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Outputs, CAMs and L2-normalised embeddings from one classifier call on the batch and
        its test-time flips (score and embedding averaged over the same views; the CAM is the
        unflipped view's)."""
        if batch is None:
            batch, _ = self.classifier_input(images, masks)
        n = len(images)
        views = [batch]
        if self.tta:
            views.append(batch[:, :, ::-1])
        if self.tta == "flip4":
            views += [batch[:, ::-1], batch[:, ::-1, ::-1]]
        prob, cam, pooled = self._classify_with_cam(np.concatenate(views) if len(views) > 1 else batch)
        prob = prob.numpy().astype(float).reshape(len(views), n).mean(axis=0)
        cam = cam.numpy()[:n]
        vectors = np.asarray(pooled, np.float32).reshape(len(views), n, -1).mean(axis=0)
        vectors = vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12)
        if calibrated and self.calibrator is not None:
            prob = self.calibrator.apply(prob)
        return prob, cam, vectors

    def classifier_input(self, images: list[np.ndarray], masks: list[np.ndarray]
                         ) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
        """The batch the classifier sees (masked for mask variants, colour-corrected, cropped,
        resized) and the box of each image it was cut from."""
        if self.variant != "image":
            images = [apply_mask(img, m) for img, m in zip(images, masks)]
        if self.cls_input.get("colour_constancy"):
            images = [shades_of_gray(img) for img in images]
        boxes = self.classifier_boxes(images, masks)
        batch = np.stack([crop_resize(img, box, self.cls_size) for img, box in zip(images, boxes)])
        return batch.astype(np.float32), boxes

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
