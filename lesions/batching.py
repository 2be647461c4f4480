"""Batched model calls for a worker process that runs several analyses at once.

A GPU-queue worker started with the threads pool (`-P threads -c N`, ANALYSIS_BATCH_SIZE=N)
takes up to N queued analyses at once. Each analysis stays its own Celery task, so claim,
idempotency, attempts, retries and failure handling are exactly those of
lesions.analysis.run_analysis; only the model calls are shared: every task hands its decoded
image to one batcher thread per process, which runs segmentation and classification for all
images waiting (up to N, waiting at most ANALYSIS_BATCH_WAIT_MS for analyses of this process
still loading their image) as one batch. The per-image work after the models (ABCD features,
outline, heat map) runs back in each task's thread.

With ANALYSIS_BATCH_SIZE=1 (the default) nothing here is used.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any, Protocol

from celery.exceptions import SoftTimeLimitExceeded

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger("lesions.batching")


class BatchableModels(Protocol):
    """What this module needs of ml.inference.Analyzer (named here, not imported: only
    lesions.worker may import the module that loads TensorFlow)."""

    def model_batch(self, images: list[np.ndarray]) -> Any: ...

    def finish_image(self, image: np.ndarray, mask: np.ndarray, probability: float, cam: np.ndarray,
                     box: tuple[int, int, int, int], mm_per_pixel: float | None = None, *,
                     model_timings: dict[str, float] | None = None, embedding: Any = None) -> Any: ...


class BatchingAnalyzer:
    """An Analyzer for many threads: analyze() has the same signature and result, and the model
    calls of concurrent callers are made together by one thread (TensorFlow is only ever called
    from that thread)."""

    def __init__(self, analyzer: BatchableModels, *, max_batch: int, max_wait_s: float, time_limit_s: float) -> None:
        self.analyzer = analyzer
        self.max_batch = max(1, max_batch)
        self.max_wait_s = max_wait_s
        self.time_limit_s = time_limit_s
        self._queue: queue.Queue[tuple[np.ndarray, Future]] = queue.Queue()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="model-batcher", daemon=True)
        self._thread.start()
        self.batches: list[int] = []  # sizes of the last batches, for logs and tests

    # The rest of the Analyzer interface (manifest, device, names, threshold, version) is the analyzer's.
    def __getattr__(self, name: str) -> Any:
        return getattr(self.analyzer, name)

    def task_started(self) -> None:
        """An analysis task began in this process: the batcher may wait for its image."""
        with self._lock:
            self._in_flight += 1

    def task_finished(self) -> None:
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)

    def analyze(self, image: np.ndarray, mm_per_pixel: float | None = None) -> Any:
        """The same result as Analyzer.analyze (an ml.inference.ImageAnalysis)."""
        future: Future = Future()
        self._queue.put((image, future))
        try:
            mask, probability, cam, box, timings, embedding = future.result(timeout=self.time_limit_s)
        except FutureTimeout as exc:
            # The models did not answer within the analysis's soft time limit: the task marks it failed.
            raise SoftTimeLimitExceeded(f"model batch took longer than {self.time_limit_s} s") from exc
        return self.analyzer.finish_image(image, mask, probability, cam, box, mm_per_pixel, model_timings=timings,
                                          embedding=embedding)

    def _collect(self) -> list[tuple[np.ndarray, Future]]:
        batch = [self._queue.get()]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:  # whatever is already waiting joins at once
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            with self._lock:
                expected = min(self.max_batch, self._in_flight)
            remaining = deadline - time.monotonic()
            if len(batch) >= expected or remaining <= 0:
                break
            try:  # other analyses of this process are still loading their images: wait a little for them
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _serve(self) -> None:
        while True:
            batch = self._collect()
            images = [image for image, _ in batch]
            try:
                out = self.analyzer.model_batch(images)
            except BaseException as exc:  # each waiting analysis fails (or retries) with the model's error
                for _, future in batch:
                    future.set_exception(exc)
                continue
            self.batches = [*self.batches[-99:], len(batch)]
            timings = {k: v for k, v in out.timings.items()}
            for i, (_, future) in enumerate(batch):
                embedding = out.embeddings[i] if i < len(out.embeddings) else None
                future.set_result((out.masks[i], out.probabilities[i], out.cams[i], out.boxes[i], timings, embedding))
            logger.debug("model batch size=%s", len(batch))
