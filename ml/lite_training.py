"""Training the EfficientNet-Lite melanoma classifier.

Plain Keras 3 with ``keras.ops`` only, so the same code trains on TensorFlow (these CPU
machines, slowly) and on JAX (a GPU host without TensorFlow); the saved weights load under
TensorFlow on the workers. Augmentation runs inside a training-only wrapper model, on the
accelerator; the exported classifier is the plain one the Analyzer loads.

Runs resume: each epoch is backed up (``keras.callbacks.BackupAndRestore``) and the best epoch
on val (ROC AUC) is kept, so re-running the same command continues where it stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
from keras import layers

from ml.classifier import build_lite_classifier, class_weights
from ml.preprocessing import classifier_view, lesion_crop_box


@dataclass
class LiteRunConfig:
    name: str
    variant: str = "lite0"
    size: int = 224
    crop: str = "lesion"  # "lesion": square box around the segmenter's mask; "centre": largest centred square
    margin: float = 0.25
    colour_constancy: bool = False
    strong_colour: bool = False
    loss: str = "weighted_bce"  # or "focal"
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 3e-4
    weight_decay: float = 1e-4
    dropout: float = 0.3
    seed: int = 1337
    notes: dict = field(default_factory=dict)


def classifier_input(image: np.ndarray, mask: np.ndarray | None, config: LiteRunConfig) -> np.ndarray:
    """The classifier's input for one RGB image: colour constancy, then the crop, at the run's size.
    The Analyzer calls this too, so training and inference prepare images the same way."""
    if config.crop == "lesion" and mask is not None:
        box = lesion_crop_box(mask, config.margin)
    else:
        box = lesion_crop_box(np.zeros(image.shape[:2], np.uint8))
    return classifier_view(image, box, (config.size, config.size), colour_constancy=config.colour_constancy)


def augmentation(config: LiteRunConfig) -> keras.Sequential:
    """The usual geometric augmentation (any rotation: a lesion has no up) plus colour jitter;
    stronger colour changes against camera differences when asked."""
    colour = 0.3 if config.strong_colour else 0.15
    steps = [
        layers.RandomFlip("horizontal_and_vertical", seed=config.seed),
        layers.RandomRotation(0.5, fill_mode="reflect", seed=config.seed + 1),
        layers.RandomZoom((-0.15, 0.15), fill_mode="reflect", seed=config.seed + 2),
        layers.RandomTranslation(0.05, 0.05, fill_mode="reflect", seed=config.seed + 3),
        layers.RandomBrightness(colour, value_range=(0, 255), seed=config.seed + 4),
        layers.RandomContrast(colour, value_range=(0, 255), seed=config.seed + 5),
    ]
    if config.strong_colour:
        steps += [layers.RandomSaturation((0.35, 0.65), value_range=(0, 255), seed=config.seed + 6),
                  layers.RandomHue(0.05, value_range=(0, 255), seed=config.seed + 7)]
    return keras.Sequential(steps, name="augment")


def loss_for(config: LiteRunConfig):
    if config.loss == "focal":
        return keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.75, gamma=2.0)
    if config.loss == "weighted_bce":
        return keras.losses.BinaryCrossentropy()
    raise ValueError(f"unknown loss {config.loss!r}")


def train_lite(config: LiteRunConfig, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
               y_val: np.ndarray, out_dir: str | Path, *, imagenet_weights: str | Path | None = None,
               verbose: int = 2) -> keras.Model:
    """Fine-tune the whole network; returns the classifier (without augmentation) at its best val epoch."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    classifier = build_lite_classifier(config.variant, config.size, dropout=config.dropout,
                                       weights=imagenet_weights)
    inputs = keras.Input((config.size, config.size, 3), name="image")
    trainer = keras.Model(inputs, classifier(augmentation(config)(inputs)), name="trainer")
    steps = max(1, len(x_train) // config.batch_size) * config.epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        config.learning_rate / 10, steps, warmup_target=config.learning_rate, warmup_steps=max(1, steps // 20))
    trainer.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
                    loss=loss_for(config), metrics=[keras.metrics.AUC(name="auc")])
    best = out / "best.weights.h5"
    callbacks = [
        keras.callbacks.BackupAndRestore(str(out / "backup")),
        keras.callbacks.ModelCheckpoint(str(best), monitor="val_auc", mode="max", save_best_only=True,
                                        save_weights_only=True),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
    ]
    started = time.perf_counter()
    trainer.fit(x_train, y_train.astype(np.float32), batch_size=config.batch_size, epochs=config.epochs,
                validation_data=(x_val, y_val.astype(np.float32)), shuffle=True, callbacks=callbacks,
                class_weight=class_weights(y_train) if config.loss == "weighted_bce" else None, verbose=verbose)
    trainer.load_weights(str(best))
    (out / "config.json").write_text(json.dumps({**asdict(config), "train_seconds": time.perf_counter() - started,
                                                 "train_images": int(len(x_train))}, indent=2))
    return classifier


def predict_with_flips(model: keras.Model, images: np.ndarray, batch_size: int = 128) -> dict[str, np.ndarray]:
    """Scores without and with flip test-time augmentation (mean over the 4 flips)."""
    plain = model.predict(images, batch_size=batch_size, verbose=0)[:, 0]
    flips = [plain, model.predict(images[:, :, ::-1], batch_size=batch_size, verbose=0)[:, 0],
             model.predict(images[:, ::-1], batch_size=batch_size, verbose=0)[:, 0],
             model.predict(images[:, ::-1, ::-1], batch_size=batch_size, verbose=0)[:, 0]]
    return {"plain": plain, "flip4": np.mean(flips, axis=0)}
