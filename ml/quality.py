"""Image-quality check of a capture: is it sharp, well exposed and is the lesion whole in the frame?

Pure NumPy/SciPy, no Django. A poor capture is still stored and analysed; the check only says
why the clinician may want to retake it. It is a different question from "is this a skin lesion
at all" (ml/plausibility.py): a blurred naevus is analysable but less trustworthy.

Measures, all on a grey copy resized to WORKING_SIDE pixels on its long side so that one
threshold serves a 180 px archive image and a 12 MP phone photograph alike:

* blur: variance of the Laplacian (Pech-Pacheco et al., "Diatom autofocusing in brightfield
  microscopy: a comparative study", ICPR 2000; the usual no-reference focus measure). A sharp
  image has strong second derivatives at edges; defocus removes them.
* exposure: fraction of clipped highlights (grey >= 250) and crushed shadows (grey <= 5), and
  whether even the brightest parts of the image are dark (95th percentile of grey).
* framing, from the lesion mask: the share of the lesion's outline that runs along the image
  border (the lesion is cut off), and the lesion's share of the frame (too small to measure).

Thresholds were set on the shared data's validation split and measured on its test split
(`python -m ml.quality --data ../shared/data/lesions-dev --split test`, numbers in README.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from ml.data import read_dataset, select
from ml.quality_thresholds import (
    MAX_CLIPPED_HIGHLIGHTS,
    MAX_CRUSHED_SHADOWS,
    MAX_OUTLINE_ON_BORDER,
    MIN_BRIGHT_GREY,
    MIN_LAPLACIAN_VARIANCE,
    MIN_LESION_AREA_FRACTION,
    WORKING_SIDE,
)

REASONS = {
    "blurred": "The image looks blurred (out of focus or moved): hold the camera still and focus on the lesion.",
    "overexposed": "Part of the image is over-exposed (white, no detail): reduce the light or avoid reflections.",
    "underexposed": "Part of the image is too dark (black, no detail): add light.",
    "lesion_cut": "The lesion runs off the edge of the image: centre it with some skin around it.",
    "lesion_small": "The lesion fills very little of the frame: move closer or zoom in.",
}


@dataclass(frozen=True)
class QualityIssue:
    code: str
    reason: str


@dataclass
class QualityReport:
    issues: list[QualityIssue] = field(default_factory=list)
    measures: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.issues

    def as_dict(self) -> dict:
        return {"issues": [asdict(i) for i in self.issues], "measures": self.measures}

    def merged(self, other: QualityReport) -> QualityReport:
        return QualityReport(self.issues + other.issues, {**self.measures, **other.measures})


def _issue(code: str) -> QualityIssue:
    return QualityIssue(code, REASONS[code])


def grey_working_copy(image: np.ndarray, side: int = WORKING_SIDE) -> np.ndarray:
    """Luma (ITU-R BT.601) as float32, resized (bilinear) so the long side is `side` pixels."""
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        grey = pixels.astype(np.float32)
    else:
        grey = pixels[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    scale = side / max(grey.shape)
    if abs(scale - 1.0) > 1e-3:
        grey = ndimage.zoom(grey, scale, order=1, prefilter=False)
    return grey


def laplacian_variance(grey: np.ndarray) -> float:
    return float(ndimage.laplace(grey).var())


def check_image(image: np.ndarray) -> QualityReport:
    """Blur and exposure of an RGB (H, W, 3) or grey (H, W) uint8 image."""
    grey = grey_working_copy(image)
    measures = {
        "laplacian_variance": laplacian_variance(grey),
        "clipped_highlights": float((grey >= 250).mean()),
        "crushed_shadows": float((grey <= 5).mean()),
        "bright_grey_p95": float(np.percentile(grey, 95)),
    }
    issues = []
    if measures["laplacian_variance"] < MIN_LAPLACIAN_VARIANCE:
        issues.append(_issue("blurred"))
    if measures["clipped_highlights"] > MAX_CLIPPED_HIGHLIGHTS:
        issues.append(_issue("overexposed"))
    if measures["crushed_shadows"] > MAX_CRUSHED_SHADOWS or measures["bright_grey_p95"] < MIN_BRIGHT_GREY:
        issues.append(_issue("underexposed"))
    return QualityReport(issues, measures)


def check_framing(mask: np.ndarray) -> QualityReport:
    """Is the segmented lesion whole and large enough in the frame? `mask`: (H, W), nonzero = lesion."""
    lesion = np.asarray(mask) > 0
    if lesion.ndim == 3:
        lesion = lesion[..., 0]
    area_fraction = float(lesion.mean()) if lesion.size else 0.0
    outline = lesion & ~ndimage.binary_erosion(lesion, border_value=0)
    on_border = np.zeros_like(lesion)
    on_border[0, :] = on_border[-1, :] = on_border[:, 0] = on_border[:, -1] = True
    outline_pixels = int(outline.sum())
    outline_on_border = float((outline & on_border).sum() / outline_pixels) if outline_pixels else 0.0
    measures = {"lesion_area_fraction": area_fraction, "outline_on_border": outline_on_border}
    if lesion.any():  # where the lesion sits (fractions of width and height): aligns captures for comparison
        rows, cols = np.nonzero(lesion)
        measures["centroid_x"] = float((cols.mean() + 0.5) / lesion.shape[1])
        measures["centroid_y"] = float((rows.mean() + 0.5) / lesion.shape[0])
    issues = []
    if outline_on_border > MAX_OUTLINE_ON_BORDER:
        issues.append(_issue("lesion_cut"))
    if 0 < area_fraction < MIN_LESION_AREA_FRACTION:
        issues.append(_issue("lesion_small"))
    return QualityReport(issues, measures)


def check_capture(image: np.ndarray, mask: np.ndarray | None = None) -> QualityReport:
    report = check_image(image)
    return report.merged(check_framing(mask)) if mask is not None else report


# Synthetic degradations used to measure how often a poor capture is caught.
def blurred(image: np.ndarray, sigma_fraction: float = 0.01) -> np.ndarray:
    """Gaussian defocus with sigma a fraction of the long side (1% = 2 px on a 200 px image)."""
    sigma = sigma_fraction * max(image.shape[:2])
    out = np.stack([ndimage.gaussian_filter(image[..., c].astype(np.float32), sigma) for c in range(3)], axis=-1)
    return out.clip(0, 255).astype(np.uint8)


def overexposed(image: np.ndarray, gain: float = 1.8, offset: float = 40.0) -> np.ndarray:
    return (image.astype(np.float32) * gain + offset).clip(0, 255).astype(np.uint8)


def underexposed(image: np.ndarray, gain: float = 0.15) -> np.ndarray:
    return (image.astype(np.float32) * gain).clip(0, 255).astype(np.uint8)


def evaluate(data: str | Path, split: str = "test", limit: int | None = None) -> dict:
    """False-alarm rate on real captures and catch rates on degraded copies of the same images."""
    samples = select(read_dataset(data), split, limit=limit)
    counts = {"images": 0, "false_alarm_image": 0, "masks": 0, "false_alarm_framing": 0, "false_alarm_any": 0,
              "blurred_caught": 0, "overexposed_caught": 0, "underexposed_caught": 0}
    reasons: dict[str, int] = {}
    for sample in samples:
        image = np.asarray(Image.open(sample.image_path).convert("RGB"))
        counts["images"] += 1
        report = check_image(image)
        counts["false_alarm_image"] += not report.ok
        for issue in report.issues:
            reasons[issue.code] = reasons.get(issue.code, 0) + 1
        framing = QualityReport()
        if sample.mask_path is not None:
            counts["masks"] += 1
            framing = check_framing(np.asarray(Image.open(sample.mask_path).convert("L")))
            counts["false_alarm_framing"] += not framing.ok
            for issue in framing.issues:
                reasons[issue.code] = reasons.get(issue.code, 0) + 1
        counts["false_alarm_any"] += not (report.ok and framing.ok)
        counts["blurred_caught"] += any(i.code == "blurred" for i in check_image(blurred(image)).issues)
        counts["overexposed_caught"] += any(i.code == "overexposed" for i in check_image(overexposed(image)).issues)
        counts["underexposed_caught"] += any(i.code == "underexposed" for i in check_image(underexposed(image)).issues)
    n, m = max(counts["images"], 1), max(counts["masks"], 1)
    return {
        "split": split, **counts, "false_alarm_reasons": reasons,
        "false_alarm_rate_image": counts["false_alarm_image"] / n,
        "false_alarm_rate_framing": counts["false_alarm_framing"] / m,
        "false_alarm_rate_any": counts["false_alarm_any"] / n,
        "blurred_catch_rate": counts["blurred_caught"] / n,
        "overexposed_catch_rate": counts["overexposed_caught"] / n,
        "underexposed_catch_rate": counts["underexposed_caught"] / n,
        "synthetic": {"blur_sigma_fraction_of_long_side": 0.01, "overexposure": "x1.8 + 40",
                      "underexposure": "x0.15"},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.quality", description=evaluate.__doc__)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "lesions-dev"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    results = evaluate(args.data, args.split, args.limit)
    print(f"{'measure':<34}{'value':>10}")
    for key in ("images", "false_alarm_rate_image", "masks", "false_alarm_rate_framing", "false_alarm_rate_any",
                "blurred_catch_rate",
                "overexposed_catch_rate", "underexposed_catch_rate"):
        value = results[key]
        print(f"{key:<34}{value:>10.4f}" if isinstance(value, float) else f"{key:<34}{value:>10}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
