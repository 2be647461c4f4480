"""The report's experiment, generalised: which backbone, and does classifying the segmented lesion
beat the unaltered image?

Every backbone × input variant is trained with the same training code (``train_classifier``),
split, images (only those with a ground-truth mask, so every variant sees the same ones), size and
epochs, and compared on the validation split: ROC AUC, and sensitivity/specificity at the threshold
chosen on val for sensitivity >= 0.90. Comparing and choosing on val keeps the test split unseen;
``score_test`` adds the test split's numbers at the val threshold, for a final report only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ml.data import select
from ml.metrics import classification_scores
from ml.training import (
    CLASSIFIER_VARIANTS,
    LITE_BACKBONES,
    ClassifierConfig,
    classifier_samples,
    default_backbone_weights,
    train_classifier,
    variant_arrays,
)

BACKBONE_NAMES = ("mobilenet", "mobilenet_v2", "vgg16", "inception_v3", *LITE_BACKBONES)
# The report's words for the inputs, accepted beside the variant names.
VARIANT_ALIASES = {"unaltered": "image", "masked": "gt_mask", "pred_masked": "pred_mask"}
BACKBONE_TITLES = {"mobilenet": "MobileNet α=0.25", "mobilenet_v2": "MobileNetV2 α=0.35", "vgg16": "VGG-16",
                   "inception_v3": "Inception-V3", "efficientnet_lite0": "EfficientNet-Lite0",
                   "efficientnet_lite1": "EfficientNet-Lite1", "efficientnet_lite2": "EfficientNet-Lite2"}


@dataclass
class ExperimentConfig:
    data: str
    out: str
    layout: str = "auto"  # or "isic2016" (ml.isic2016)
    backbones: list[str] = field(default_factory=lambda: ["mobilenet"])
    variants: list[str] = field(default_factory=lambda: ["image", "gt_mask", "pred_mask"])
    weights: dict[str, str | None] = field(default_factory=dict)  # backbone -> local ImageNet file, None: scratch
    epochs: int = 4
    size: int = 160
    batch_size: int = 32
    segmenter: str | None = None  # for pred_mask
    limit: int | None = None
    val_fraction: float = 0.2  # isic2016 only
    score_test: bool = False


def parse_names(text: str, allowed: tuple[str, ...] | list[str], aliases: dict[str, str] | None = None) -> list[str]:
    """A comma-separated list of names, aliases resolved, each checked against ``allowed``."""
    aliases = aliases or {}
    names = [aliases.get(n.strip(), n.strip()) for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise ValueError(f"unknown name(s) {unknown or text!r}; choose from {', '.join(allowed)}"
                         + (f" (or {', '.join(aliases)})" if aliases else ""))
    return list(dict.fromkeys(names))


def resolve_weights(backbones: list[str], given: list[str], *, no_weights: bool) -> dict[str, str | None]:
    """Each backbone's ImageNet weights file: ``NAME=PATH`` entries (a bare PATH when there is one
    backbone), otherwise the default one found locally (``default_backbone_weights``), or none."""
    if no_weights:
        return dict.fromkeys(backbones)
    chosen: dict[str, str | None] = {b: default_backbone_weights(b) for b in backbones}
    for entry in given:
        name, sep, path = entry.partition("=")
        if not sep:
            if len(backbones) != 1:
                raise ValueError(f"--weights {entry}: say which backbone it is for (NAME=PATH) when comparing several")
            name, path = backbones[0], entry
        if name not in chosen:
            raise ValueError(f"--weights {entry}: {name!r} is not among the backbones {', '.join(backbones)}")
        if not Path(path).is_file():
            raise FileNotFoundError(f"ImageNet weights file not found: {path}")
        chosen[name] = path
    return chosen


def _classifier_config(config: ExperimentConfig, backbone: str, variant: str) -> ClassifierConfig:
    return ClassifierConfig(
        data=config.data, out=str(Path(config.out) / f"{backbone}__{variant}"), backbone=backbone,
        weights=config.weights.get(backbone), size=config.size, epochs=config.epochs,
        batch_size=config.batch_size, variant=variant,
        segmenter=config.segmenter if variant == "pred_mask" else None, require_mask=True, limit=config.limit,
        layout=config.layout, val_fraction=config.val_fraction)


def _test_scores(model_path: Path, cls_config: ClassifierConfig, threshold: float) -> dict:
    import keras

    test = select(classifier_samples(cls_config), "test", need_label=True, need_mask=True, limit=cls_config.limit)
    x, labels = variant_arrays(test, cls_config, cache_dir=Path(cls_config.out).parent / "cache", desc="test images")
    model = keras.saving.load_model(model_path, compile=False)
    probs = model.predict(x.astype("float32"), batch_size=64, verbose=0)[:, 0]
    return classification_scores(labels, probs, threshold)


def compare_classifiers(config: ExperimentConfig) -> tuple[str, dict]:
    """Train and score every backbone × variant; writes results.json and results.md under ``out``
    and returns (the table, the results)."""
    if "pred_mask" in config.variants and not config.segmenter:
        raise ValueError("the pred_mask variant needs a segmenter (--segmenter PATH)")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for backbone in config.backbones:
        if not config.weights.get(backbone):
            print(f"{backbone}: no ImageNet weights file, trained from scratch", flush=True)
        for variant in config.variants:
            cls_config = _classifier_config(config, backbone, variant)
            model_path = train_classifier(cls_config)
            meta = json.loads(model_path.with_suffix(".json").read_text())
            row = {"backbone": backbone, "variant": variant, "weights": config.weights.get(backbone),
                   "input_normalization": meta["input_normalization"], "threshold": meta["threshold"],
                   "train_images": meta["train_images"], "val": meta["val_metrics"], "model": str(model_path)}
            if config.score_test:
                row["test"] = _test_scores(model_path, cls_config, meta["threshold"])
            rows.append(row)
    results = {"settings": asdict(config), "rows": rows}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    table = experiment_table(results)
    (out / "results.md").write_text(table)
    return table, results


def experiment_table(results: dict) -> str:
    settings, rows = results["settings"], results["rows"]
    val_images = rows[0]["val"]["images"] if rows else 0
    data = "ISIC 2016 (official split; val drawn from Training)" if settings["layout"] == "isic2016" else settings["data"]
    lines = [f"{data}; images with masks only; {settings['size']} px, {settings['epochs']} epoch(s) each; "
             f"val images: {val_images}. Sensitivity and specificity at the threshold chosen on val for "
             "sensitivity >= 0.90; val AUC is at the epoch chosen on val, so slightly optimistic.", ""]
    test = any("test" in r for r in rows)
    header = "| backbone | input | ImageNet weights | val ROC AUC | val sensitivity | val specificity | threshold |"
    rule = "|---|---|---|---|---|---|---|"
    if test:
        header += " test ROC AUC | test sensitivity | test specificity |"
        rule += "---|---|---|"
    lines += [header, rule]
    for r in rows:
        v = r["val"]
        line = (f"| {BACKBONE_TITLES.get(r['backbone'], r['backbone'])} | {CLASSIFIER_VARIANTS[r['variant']]} | "
                f"{'yes' if r['weights'] else 'no'} | {v['roc_auc']:.3f} | {v['sensitivity']:.3f} | "
                f"{v['specificity']:.3f} | {r['threshold']:.3f} |")
        if "test" in r:
            t = r["test"]
            line += f" {t['roc_auc']:.3f} | {t['sensitivity']:.3f} | {t['specificity']:.3f} |"
        lines.append(line)
    return "\n".join(lines) + "\n"
