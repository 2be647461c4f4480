"""One capture's analysis at dermoscope and phone sizes: where a worker's time goes when the upload
is not a 256-pixel development image. The steps are the worker's own (lesions.analysis.run_analysis
and lesions.analysis.make_thumbnail), without the database and the storage:

    python bench/large_capture.py [--sides 1024 2048 4000] [--repeat 3] [--out bench-results/large_capture.json]

Each capture is a development-set image (../shared/data/lesions-dev; a synthetic capture when it is
absent) scaled up to SIDE × 3/4 SIDE and saved as a quality-92 JPEG, as a camera would. Prints a table
of median milliseconds per step and writes JSON with the machine's description.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "lesions-dev"
STEPS = ["decode", "plausibility", "segmentation", "classification", "features", "rendering", "png_outputs",
         "thumbnail", "total"]


def capture_jpeg(side: int, data: Path) -> bytes:
    """A SIDE × 3/4 SIDE JPEG of a real lesion image (or a synthetic one)."""
    from PIL import Image  # noqa: PLC0415 - after sys.path is set

    from ml.synthetic import synthetic_capture  # noqa: PLC0415

    images = sorted((data / "images").glob("*.jpg")) if (data / "images").is_dir() else []
    source = Image.open(images[3]).convert("RGB") if images else Image.fromarray(synthetic_capture(3, (600, 800)))
    out = io.BytesIO()
    source.resize((side, side * 3 // 4), Image.BICUBIC).save(out, format="JPEG", quality=92)
    return out.getvalue()


def time_one(jpeg: bytes, analyzer) -> dict[str, float]:
    """Seconds per step of one analysis and one thumbnail of `jpeg`, as the worker runs them."""
    from lesions.images import decode_rgb, encode_png, thumbnail_png  # noqa: PLC0415
    from ml import plausibility  # noqa: PLC0415

    started = time.perf_counter()
    image = decode_rgb(jpeg)
    decoded = time.perf_counter()
    if plausibility.image_refusal(image):
        raise SystemExit("the benchmark capture was refused as not analysable")
    checked = time.perf_counter()
    result = analyzer.analyze(image, None)
    analysed = time.perf_counter()
    outputs = [encode_png(result.mask * 255), encode_png(result.overlay)]
    if result.heatmap is not None:
        outputs.append(encode_png(result.heatmap))
    encoded = time.perf_counter()
    thumbnail_png(jpeg)
    finished = time.perf_counter()
    return {"decode": decoded - started, "plausibility": checked - decoded,
            "segmentation": result.timings["segmentation_s"], "classification": result.timings["classification_s"],
            "features": result.timings["features_s"], "rendering": result.timings["rendering_s"],
            "png_outputs": encoded - analysed, "thumbnail": finished - encoded, "total": finished - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[1024, 2048, 4000], help="longer side, pixels")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", default=str(REPO / "bench-results" / "large_capture.json"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    import django  # noqa: PLC0415 - lesions.images reads the upload settings

    django.setup()
    from bench.report import machine_description  # noqa: PLC0415 - after django.setup()
    from ml.inference import Analyzer  # noqa: PLC0415

    analyzer = Analyzer()
    rows = []
    for side in args.sides:
        jpeg = capture_jpeg(side, args.data)
        time_one(jpeg, analyzer)  # warm-up: the first call at a new size builds LiteRT's buffers
        runs = [time_one(jpeg, analyzer) for _ in range(args.repeat)]
        rows.append({"side": side, "pixels": side * (side * 3 // 4), "jpeg_bytes": len(jpeg),
                     "median_ms": {step: 1000 * statistics.median(r[step] for r in runs) for step in STEPS}})
    result = {"machine": machine_description(), "runtime": analyzer.runtime, "repeat": args.repeat, "rows": rows}
    print(f"One capture's analysis and thumbnail, median ms of {args.repeat} ({analyzer.runtime})")
    print(f"{'step':<16}" + "".join(f"{r['side']:>8} px" for r in rows))
    for step in STEPS:
        print(f"{step:<16}" + "".join(f"{r['median_ms'][step]:>11.0f}" for r in rows))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
