"""The classical floor: Otsu thresholding for segmentation and logistic regression on colour
statistics of the lesion for classification (no deep learning)."""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from ml.data import read_dataset, select
from ml.defaults import SENSITIVITY_TARGET
from ml.metrics import classification_scores, pixel_accuracy, segmentation_scores, threshold_for_sensitivity
from ml.postprocess import clean_mask
from ml.preprocessing import load_mask, load_rgb


def otsu_threshold(gray: np.ndarray) -> float:
    hist, edges = np.histogram(gray, bins=256, range=(0, 256))
    weights = hist.astype(np.float64) / max(hist.sum(), 1)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(weights)
    mu = np.cumsum(weights * centres)
    between = (mu[-1] * w0 - mu) ** 2 / (w0 * (1 - w0) + 1e-12)
    return float(centres[int(np.argmax(between))])


def otsu_segment(image: np.ndarray) -> np.ndarray:
    """Lesions are darker than skin: pixels below Otsu's threshold, cleaned to one solid region."""
    gray = image.astype(np.float32).mean(axis=-1)
    return clean_mask(gray < otsu_threshold(gray))


def colour_features(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    inside = image[mask > 0].astype(np.float32) if mask.any() else image.reshape(-1, 3).astype(np.float32)
    outside = image[mask == 0].astype(np.float32) if (mask == 0).any() else inside
    return np.concatenate([inside.mean(0), inside.std(0), np.percentile(inside, [10, 90], axis=0).ravel(),
                           inside.mean(0) - outside.mean(0), [mask.mean()]])


def evaluate_baseline(data: str, limit: int | None = None) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    samples = read_dataset(data)
    sets = {}
    for split in ("train", "val", "test"):
        chosen = select(samples, split, need_label=True, limit=limit)
        feats, labels, truths, preds = [], [], [], []
        for s in tqdm(chosen, desc=f"baseline {split}", unit="img"):
            image = load_rgb(s.image_path)
            mask = otsu_segment(image)
            feats.append(colour_features(image, mask))
            labels.append(s.melanoma)
            if s.mask_path is not None and split == "test":
                truths.append(load_mask(s.mask_path))
                preds.append(mask)
        sets[split] = (np.array(feats), np.array(labels), truths, preds)
    model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000))
    model.fit(sets["train"][0], sets["train"][1])
    threshold = threshold_for_sensitivity(sets["val"][1], model.predict_proba(sets["val"][0])[:, 1],
                                          SENSITIVITY_TARGET)
    x_test, y_test, truths, preds = sets["test"]
    return {
        "data": data, "split": "test", "models": "otsu + logistic regression on colour",
        "segmentation": {**segmentation_scores(truths, preds), "pixel_accuracy_mean": pixel_accuracy(truths, preds)}
        if truths else None,
        "classification": classification_scores(y_test, model.predict_proba(x_test)[:, 1], threshold),
    }
