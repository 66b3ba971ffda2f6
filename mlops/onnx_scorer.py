"""Score rows with an exported ONNX binary classifier; the serving hot path.

The prediction API imports this module in every request-handling process, so it
depends on numpy and onnxruntime only: no scikit-learn, XGBoost or converters.
A request builds one float32 array and makes one ``InferenceSession.run`` call;
no DataFrame or DMatrix is built per request.

Threads are pinned (one intra-op and one inter-op thread, sequential execution)
by default: a serving process runs several workers, and a single-row model is
faster on one thread than paying the cost of waking a pool. Batch scoring uses
`ConcurrentOnnxScorer`: one such session per core, fed chunks from Python threads.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from queue import Empty, SimpleQueue
from typing import Final

import numpy as np
import onnxruntime as ort

CPU_PROVIDER: Final = "CPUExecutionProvider"
POSITIVE_CLASS_COLUMN: Final = 1


class OnnxScorer:
    """An ONNX binary classifier that returns positive-class probabilities.

    The model must have one input of shape ``[batch, n_features]`` with a fixed
    feature dimension, and a float probability output of shape ``[batch, 2]``
    (what ``training.export.export_onnx`` writes: no ZipMap).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | bytes,
        *,
        intra_op_num_threads: int = 1,
        inter_op_num_threads: int = 1,
        parallel_execution: bool = False,
        providers: tuple[str, ...] = (CPU_PROVIDER,),
    ) -> None:
        """Load the model from a file path or from the serialized bytes.

        ``inter_op_num_threads`` only matters with ``parallel_execution=True``.
        """
        if intra_op_num_threads < 1 or inter_op_num_threads < 1:
            raise ValueError("thread counts must be at least 1")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_num_threads
        options.inter_op_num_threads = inter_op_num_threads
        mode = ort.ExecutionMode
        options.execution_mode = mode.ORT_PARALLEL if parallel_execution else mode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        source = model if isinstance(model, bytes) else os.fspath(model)
        self._session = ort.InferenceSession(source, options, providers=list(providers))

        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"expected a model with one input, found {len(inputs)}")
        shape = inputs[0].shape
        if len(shape) != 2 or not isinstance(shape[1], int):
            raise ValueError(
                f"model input {inputs[0].name!r} must be [batch, n_features] with a fixed "
                f"n_features, found shape {shape}"
            )
        if inputs[0].type != "tensor(float)":
            raise ValueError(f"model input must be float32, found {inputs[0].type}")
        self.input_name: str = inputs[0].name
        self.n_features: int = shape[1]
        self.output_name: str = self._probability_output_name()
        # Resolved once: run() then fetches only the probability tensor.
        self._output_names = [self.output_name]

    def _probability_output_name(self) -> str:
        candidates = [
            output
            for output in self._session.get_outputs()
            if output.type == "tensor(float)" and len(output.shape) == 2
        ]
        if len(candidates) != 1:
            found = [(o.name, o.type, o.shape) for o in self._session.get_outputs()]
            raise ValueError(
                "expected exactly one float [batch, n_classes] probability output "
                f"(export without ZipMap), found outputs {found}"
            )
        n_classes = candidates[0].shape[1]
        if isinstance(n_classes, int) and n_classes != 2:
            raise ValueError(f"expected a binary classifier, model has {n_classes} classes")
        return str(candidates[0].name)

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        """Positive-class probability of each row of a ``(n, n_features)`` float32 array.

        Returns a 1-D array of length ``n``. Other float dtypes are converted (a copy);
        passing float32 avoids it.
        """
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise ValueError(
                f"expected rows of shape (n, {self.n_features}), got {rows.shape}"
                + ("; reshape a single row with row.reshape(1, -1)" if rows.ndim == 1 else "")
            )
        # No-op for a C-contiguous float32 array, which is what callers should pass.
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        (probabilities,) = self._session.run(self._output_names, {self.input_name: rows})
        return probabilities[:, POSITIVE_CLASS_COLUMN]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(input={self.input_name!r}, n_features={self.n_features}, "
            f"output={self.output_name!r})"
        )


class ConcurrentOnnxScorer:
    """A batch scorer: chunks of a large matrix scored at once on one-thread sessions.

    onnxruntime releases the GIL in `run`, so one Python thread per core, each on its own
    one-thread session, scores in parallel with nothing shared. On the fraud champion
    (200 trees in one TreeEnsembleClassifier) that nearly doubled the rows/s of one
    session with two intra-op threads, whose pool spins against other work on the
    machine (`mlops bench batch`; figures in docs/benchmarks.md). Chunks of 10,000-50,000
    rows were as fast as any; much larger ones leave a core idle at the end.
    """

    # Rows per `run` call: small enough to keep both threads busy to the end.
    CHUNK_ROWS: Final = 50_000

    def __init__(self, model: str | os.PathLike[str] | bytes, *, threads: int) -> None:
        if threads < 1:
            raise ValueError("thread counts must be at least 1")
        self._scorers = [OnnxScorer(model) for _ in range(threads)]
        self.n_features: int = self._scorers[0].n_features

    @property
    def threads(self) -> int:
        return len(self._scorers)

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        """Positive-class probability of each row, as `OnnxScorer.predict_proba`."""
        if self.threads == 1 or len(rows) <= self.CHUNK_ROWS:
            return self._scorers[0].predict_proba(rows)
        # Chunks are handed out as the threads come free: a core taken by other work
        # then costs its share of chunks, not the whole second half of the matrix.
        pending: SimpleQueue[int] = SimpleQueue()
        for start in range(0, len(rows), self.CHUNK_ROWS):
            pending.put(start)
        probabilities = np.empty(len(rows), dtype=np.float32)

        def score_chunks(scorer: OnnxScorer) -> None:
            while True:
                try:
                    start = pending.get_nowait()
                except Empty:
                    return
                end = start + self.CHUNK_ROWS
                probabilities[start:end] = scorer.predict_proba(rows[start:end])

        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            # list(): re-raise the first worker's error here.
            list(pool.map(score_chunks, self._scorers))
        return probabilities


def single_row_timings_ms(
    model: str | os.PathLike[str], rows: np.ndarray, calls: int, warm_up: int
) -> np.ndarray:
    """Milliseconds of `calls` single-row calls as the API makes them (one thread, one
    float32 row a call), cycling through `rows`, after `warm_up` calls not timed."""
    scorer = OnnxScorer(model)
    singles = [
        np.ascontiguousarray(rows[i : i + 1], dtype=np.float32) for i in range(min(len(rows), 256))
    ]
    for i in range(warm_up):
        scorer.predict_proba(singles[i % len(singles)])
    timings = np.empty(calls, dtype=np.float64)
    for i in range(calls):
        row = singles[i % len(singles)]
        started = time.perf_counter_ns()
        scorer.predict_proba(row)
        timings[i] = (time.perf_counter_ns() - started) / 1e6
    return timings
