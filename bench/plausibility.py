"""How often the plausibility checks (ml/plausibility.py) refuse real lesions and junk.

Real: every image of the shared lesions-dev test split, through the same steps as an upload
(clean_image_bytes re-encodes it), the image checks, and the shipped segmenter for the mask
checks. Junk: synthetic images of four kinds (bench/junk_images.py). An image counts as
refused when the upload check rejects it or either plausibility check does. Prints a table
and writes JSON. Run: python bench/plausibility.py [--limit N] [--out bench-results/plausibility.json]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

import django  # noqa: E402

django.setup()

from django.core.exceptions import ValidationError  # noqa: E402
from PIL import Image  # noqa: E402

from bench import junk_images as junk  # noqa: E402
from lesions.images import clean_image_bytes  # noqa: E402
from ml import plausibility  # noqa: E402

SHARED = Path(os.environ.get("LESIONTRACK_SHARED_DATA", REPO.parent / "shared" / "data")) / "lesions-dev"


def clean_then_decode(data: bytes) -> np.ndarray | None:
    """What a worker sees after an upload, or None when the upload itself is refused."""
    try:
        clean = clean_image_bytes(data, max_bytes=20 * 1024 * 1024, max_pixels=40_000_000)
    except ValidationError:
        return None
    with Image.open(io.BytesIO(clean.content)) as img:
        return np.asarray(img.convert("RGB"))


def judge(images: list[bytes], segmenter, batch: int = 16, mask_stride: int = 1) -> list[str]:
    """'upload', 'image: <reason>', 'mask: <reason>' or 'ok' for each image ('ok (image checks only)'
    for images outside the mask sample: every `mask_stride`-th image goes through the segmenter)."""
    verdicts: list[str] = [""] * len(images)
    pending: list[tuple[int, np.ndarray]] = []
    for i, data in enumerate(images):
        decoded = clean_then_decode(data)
        if decoded is None:
            verdicts[i] = "upload"
            continue
        reason = plausibility.image_refusal(decoded)
        if reason:
            verdicts[i] = f"image: {reason}"
            continue
        if i % mask_stride == 0:
            pending.append((i, decoded))
        else:
            verdicts[i] = "ok (image checks only)"
    for start in range(0, len(pending), batch):
        chunk = pending[start:start + batch]
        masks = segmenter.segment_batch([img for _, img in chunk])
        for (i, _), mask in zip(chunk, masks):
            reason = plausibility.mask_refusal(mask)
            verdicts[i] = f"mask: {reason}" if reason else "ok"
    return verdicts


def junk_sets(real_jpegs: list[bytes], first_seed: int = 0) -> dict[str, list[bytes]]:
    """The synthetic sets; the i-th real JPEG is corrupted with seed first_seed + i."""
    heavy = [junk.bit_flipped(data, flips=30, seed=first_seed + i, within=1.0) for i, data in enumerate(real_jpegs)]
    light = [junk.bit_flipped(data, flips=5, seed=first_seed + i, within=0.1) for i, data in enumerate(real_jpegs)]
    return {"uniform": junk.uniform_images(40), "noise": junk.noise_images(40), "text": junk.text_images(40),
            "bit-flipped (30 flips across the scan)": heavy,
            "bit-flipped, light (5 flips in the first 10%; not junk, reported only)": light}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=0, help="only the first N test images (0: all)")
    parser.add_argument("--mask-stride", type=int, default=1,
                        help="run the segmenter on every N-th test image only (it is the slow part on a CPU)")
    parser.add_argument("--junk-sources", type=int, default=40, help="real JPEGs to corrupt for the bit-flip sets")
    parser.add_argument("--junk-first", type=int, default=0,
                        help="index of the first test image to corrupt (and its seed: image i gets seed i)")
    parser.add_argument("--out", default=str(REPO / "bench-results" / "plausibility.json"))
    args = parser.parse_args()
    from ml.inference import Analyzer  # noqa: PLC0415 - TensorFlow only when measuring

    rows = [r for r in csv.DictReader(open(SHARED / "labels.csv")) if r["split"] == "test"]
    if args.limit:
        rows = rows[: args.limit]
    real = [(SHARED / "images" / f"{r['image_id']}.jpg").read_bytes() for r in rows]
    analyzer = Analyzer(REPO / "ml" / "models")
    started = time.perf_counter()
    results: dict = {"test_split": {}, "junk": {}}
    verdicts = judge(real, analyzer, mask_stride=args.mask_stride)
    refused = {rows[i]["image_id"]: v for i, v in enumerate(verdicts) if not v.startswith("ok")}
    masked = sum(1 for v in verdicts if v in ("ok",) or v.startswith("mask"))
    results["test_split"] = {"images": len(real), "refused": len(refused),
                             "refused_fraction": len(refused) / max(1, len(real)), "refusals": refused,
                             "by_image_check": sum(v.startswith("image") for v in verdicts),
                             "segmented": masked, "by_mask_check": sum(v.startswith("mask") for v in verdicts),
                             "mask_stride": args.mask_stride, "junk_first": args.junk_first}
    sources = real[args.junk_first: args.junk_first + args.junk_sources]
    for kind, images in junk_sets(sources, first_seed=args.junk_first).items():
        v = judge(images, analyzer)
        results["junk"][kind] = {"images": len(v), "refused": sum(not x.startswith("ok") for x in v),
                                 "at_upload": sum(x == "upload" for x in v),
                                 "by_image_check": sum(x.startswith("image") for x in v),
                                 "by_mask_check": sum(x.startswith("mask") for x in v)}
    results["seconds"] = time.perf_counter() - started
    split = results["test_split"]
    print(f"lesions-dev test split: {split['refused']} of {split['images']} refused "
          f"({100 * split['refused_fraction']:.2f}%): {split['by_image_check']} by the image checks (all images), "
          f"{split['by_mask_check']} of {split['segmented']} segmented by the mask checks")
    for image_id, verdict in refused.items():
        print(f"  {image_id}: {verdict[:110]}")
    print(f"\n{'junk kind':<72}{'images':>7}{'refused':>8}{'upload':>7}{'image':>6}{'mask':>5}")
    for kind, r in results["junk"].items():
        print(f"{kind:<72}{r['images']:>7}{r['refused']:>8}{r['at_upload']:>7}{r['by_image_check']:>6}"
              f"{r['by_mask_check']:>5}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"written {args.out} in {results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
