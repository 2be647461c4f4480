"""Inference benchmark: per-stage latency (median, p95) at several batch sizes, against plain
``model.predict`` on the same models as the baseline."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from ml.features import measure
from ml.inference import Analyzer
from ml.preprocessing import resize_image
from ml.synthetic import synthetic_capture


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def machine_description(*, tensorflow: bool = False) -> dict:
    """The machine a benchmark ran on, stored beside its numbers so results from different
    machines never mix. The one description used by every benchmark (bench/ re-exports it)."""
    machine = {"host": platform.node(), "cpu": cpu_model(), "cores": os.cpu_count(), "memory_gb": memory_gb(),
               "python": platform.python_version(), "platform": platform.platform()}
    if tensorflow:
        import tensorflow as tf

        machine.update(tensorflow=tf.__version__, gpus=[d.name for d in tf.config.list_physical_devices("GPU")])
    return machine


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank q-th percentile (0-100) of the values; NaN for none."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * (len(ordered) - 1)))))]


def _stats(samples: list[float]) -> dict:
    return {"median_ms": statistics.median(samples) * 1000, "p95_ms": percentile(samples, 95) * 1000,
            "runs": len(samples)}


def bench_inference(*, models: str, out: Path, repeats: int, batch_sizes: list[int]) -> dict:
    analyzer = Analyzer(models)
    pool = [synthetic_capture(i) for i in range(max(batch_sizes))]
    results: dict = {"machine": machine_description(tensorflow=True), "models": analyzer.version, "device": analyzer.device,
                     "runtime": analyzer.runtime,
                     "ensemble_members": [m.name for m in analyzer.members],  # beside the primary classifier
                     "image_size": list(pool[0].shape), "tta": {"segmenter": analyzer.seg_tta,
                                                                "classifier": analyzer.tta},
                     "where_compiled_loses": WHERE_COMPILED_LOSES, "batches": {}}
    for batch_size in batch_sizes:
        images = pool[:batch_size]
        analyzer.analyze_batch(images)  # warm-up: graph tracing
        stages: dict[str, list[float]] = {"segmentation": [], "classification": [], "features": [], "total": [],
                                          "baseline_predict": [], "compiled_same_work": [], "tensorflow_same_work": [],
                                          "tta_extra": []}
        seg_in = np.stack([resize_image(i, analyzer.seg_size, crop=False) for i in images]).astype(np.float32)
        cls_in = np.stack([resize_image(i, analyzer.cls_size, crop=True) for i in images]).astype(np.float32)
        # An ensemble's other members are part of the plain baseline too, each at its own input size.
        member_in = [np.stack([resize_image(i, m.input.size, crop=True) for i in images]).astype(np.float32)
                     for m in analyzer.members]
        analyzer.segmenter.predict(seg_in, verbose=0)
        analyzer.classifier.predict(cls_in, verbose=0)
        for member, x in zip(analyzer.members, member_in):
            member.model.predict(x, verbose=0)
        # Warm-up of each call timed below at these shapes (tracing, interpreter resizing).
        tf_segment, tf_classify, tf_members = analyzer.tensorflow_calls
        for segment, classify, predicts in [(analyzer._segment, analyzer._classify_with_cam,
                                             [m.predict for m in analyzer.members]),
                                            (tf_segment, tf_classify, tf_members)]:
            np.asarray(segment(seg_in))
            np.asarray(classify(cls_in)[0])
            for predict, x in zip(predicts, member_in):
                np.asarray(predict(x))
        for _ in range(max(3, repeats // batch_size)):
            t0 = time.perf_counter()
            masks = analyzer.segment_batch(images)
            t1 = time.perf_counter()
            analyzer.classify_batch(images, masks)
            t2 = time.perf_counter()
            for img, mask in zip(images, masks):
                measure(img, mask)
            t3 = time.perf_counter()
            analyzer.analyze_batch(images)
            t4 = time.perf_counter()
            analyzer.segmenter.predict(seg_in, verbose=0)
            analyzer.classifier.predict(cls_in, verbose=0)
            for member, x in zip(analyzer.members, member_in):
                member.model.predict(x, verbose=0)
            t5 = time.perf_counter()
            # The shipped runtime's functions on exactly the baseline's work (same resized inputs,
            # no flips; the classifier's CAM and embedding come with its call): what the runtime
            # itself gains or loses against model.predict; then TensorFlow's compiled functions on
            # the same work, which the runtime replaces on a CPU (ml.tflite_runtime).
            np.asarray(analyzer._segment(seg_in))
            np.asarray(analyzer._classify_with_cam(cls_in)[0])
            for member, x in zip(analyzer.members, member_in):
                np.asarray(member.predict(x))
            t6 = time.perf_counter()
            np.asarray(tf_segment(seg_in))
            np.asarray(tf_classify(cls_in)[0])
            for predict, x in zip(tf_members, member_in):
                np.asarray(predict(x))
            t7 = time.perf_counter()
            # What test-time augmentation adds: the mirrored copies the shipped path also runs.
            if analyzer.seg_tta:
                np.asarray(analyzer._segment(seg_in[:, :, ::-1]))
            if analyzer.tta:
                np.asarray(analyzer._classify_with_cam(cls_in[:, :, ::-1])[0])
            t8 = time.perf_counter()
            per = 1 / batch_size
            stages["segmentation"].append((t1 - t0) * per)
            stages["classification"].append((t2 - t1) * per)
            stages["features"].append((t3 - t2) * per)
            stages["total"].append((t4 - t3) * per)
            stages["baseline_predict"].append((t5 - t4) * per)
            stages["compiled_same_work"].append((t6 - t5) * per)
            stages["tensorflow_same_work"].append((t7 - t6) * per)
            stages["tta_extra"].append((t8 - t7) * per)
        results["batches"][str(batch_size)] = {k: _stats(v) for k, v in stages.items()}
    print_table(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten {out}")
    return results


WHERE_COMPILED_LOSES = (
    "segmentation + classification (the shipped path) is not the same work as the baseline "
    "model.predict: it also runs the mirrored copies of every image (test-time augmentation, both models "
    "when the manifest asks for it), the class activation map, and the resizing and mask post-processing "
    "in numpy, while the baseline is given inputs resized beforehand. '<runtime>, baseline's work only' "
    "runs the shipped runtime's functions (TensorFlow Lite on a CPU, tf.function on a GPU; the classifier's "
    "with its CAM) on exactly the baseline's inputs, and 'tf.function, baseline's work only' TensorFlow's "
    "compiled functions on the same inputs: the gaps to the baseline are what each runtime gains or loses, "
    "and 'of which mirrored copies' is the cost of the augmentation. At large batches the shipped path "
    "loses to the baseline by the augmentation (several views of each image), not by its runtime.")


def print_table(results: dict) -> None:
    m = results["machine"]
    runtime = results.get("runtime", "tensorflow")
    print(f"Inference per image on {m['cpu']} ({m['cores']} cores, {results['device']}, {runtime}), "
          f"models {results['models']}")
    print(f"{'batch':>6} {'stage':<34}{'median ms':>11}{'p95 ms':>10}")
    for batch, stages in results["batches"].items():
        for stage, s in stages.items():
            label = {"total": "total (seg+cls+ABCD+render)",
                     "baseline_predict": "baseline model.predict (seg+cls)",
                     "compiled_same_work": f"{runtime}, baseline's work only",
                     "tensorflow_same_work": "tf.function, baseline's work only",
                     "tta_extra": "of which mirrored copies (TTA)"}.get(stage, stage)
            print(f"{batch:>6} {label:<34}{s['median_ms']:>11.1f}{s['p95_ms']:>10.1f}")
