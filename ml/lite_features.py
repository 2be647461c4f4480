"""Frozen EfficientNet-Lite features of every train/val image, for training a classifier head
where fine-tuning the whole network does not fit the compute at hand.

    python -m ml.lite_features --data DIR --labels LABELS.csv --out OUT --weights BACKBONE.npz

Writes ``<variant>_<split>.npz`` (uint8-quantised global-average-pooled features: the backbone
ends in ReLU6, so features lie in [0, 6]) and ``ids_<split>.txt``.
"""

from __future__ import annotations

import argparse
import csv
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np

from ml.efficientnet_lite import build_efficientnet_lite, load_compact_weights
from ml.lite_sweep import VARIANTS, segment_all
from ml.lite_training import classifier_input
from ml.preprocessing import load_rgb

FEATURE_SCALE = 6.0 / 255.0  # uint8 step of the quantised features


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--models", type=Path, default=Path(__file__).resolve().parent / "models")
    parser.add_argument("--variants", default="lesion224_sog,centre224")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = [r for r in csv.DictReader(args.labels.open()) if r["split"] in ("train", "val")]
    with ThreadPoolExecutor(16) as pool:
        images = list(pool.map(lambda r: load_rgb(args.data / "images" / f"{r['image_id']}.jpg"), rows))
    print(f"loaded {len(images)} in {time.perf_counter() - started:.0f} s", flush=True)
    masks = segment_all(images, args.models)
    print(f"segmented in {time.perf_counter() - started:.0f} s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        (args.out / f"ids_{split}.txt").write_text("\n".join(r["image_id"] for r in rows if r["split"] == split))
    for name in args.variants.split(","):
        config = replace(VARIANTS[name])
        backbone = load_compact_weights(build_efficientnet_lite(config.variant, (config.size, config.size, 3)),
                                        args.weights)
        inputs = keras.Input((config.size, config.size, 3))
        pooled = keras.layers.GlobalAveragePooling2D()(backbone(keras.layers.Rescaling(1 / 127.5, -1.0)(inputs)))
        extractor = keras.Model(inputs, pooled)
        with ThreadPoolExecutor(16) as pool:
            x = np.stack(list(pool.map(lambda pair, c=config: classifier_input(pair[0], pair[1], c), zip(images, masks))))
        features = np.asarray(extractor.predict(x, batch_size=512, verbose=0))
        quantised = np.clip(np.round(features / FEATURE_SCALE), 0, 255).astype(np.uint8)
        for split in ("train", "val"):
            chosen = np.array([r["split"] == split for r in rows])
            np.savez_compressed(args.out / f"{name}_{split}.npz", features=quantised[chosen])
        print(f"{name}: features {features.shape} in {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
