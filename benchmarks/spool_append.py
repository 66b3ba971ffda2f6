"""The cost of spooling one prediction (`PredictionLog.append`) on this machine's disk.

`python -m benchmarks.spool_append [--fsync]`: 50,000 churn-sized records (2,000 with
`--fsync`) appended to a spool in a temporary folder; prints the median, p99 and mean.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from mlops.prediction_log import Prediction, PredictionLog

# The churn model's feature count.
FEATURES = tuple(f"feature_{i}" for i in range(19))


def measure(records: int, fsync: bool) -> dict[str, float]:
    """Microseconds per append (p50, p99, mean) and bytes per record."""
    with tempfile.TemporaryDirectory() as folder:
        log = PredictionLog(f"sqlite:///{folder}/p.db", Path(folder) / "spool", fsync=fsync)
        log.spool.open()
        predictions = [
            Prediction(
                request_id=f"req-{i}",
                endpoint="/v1/churn/predict",
                model_name="churn",
                model_version="1",
                entity={"customer_id": f"C{i:06d}"},
                feature_names=FEATURES,
                feature_values=[j * 1.37 for j in range(len(FEATURES))],
                score=0.42,
                decision=False,
            )
            for i in range(records)
        ]
        took = []
        for prediction in predictions:
            started = time.perf_counter_ns()
            log.append(prediction)
            took.append(time.perf_counter_ns() - started)
        size = log.spool.size
        log.spool.close()
    took.sort()
    return {
        "p50_us": took[records // 2] / 1000,
        "p99_us": took[int(records * 0.99)] / 1000,
        "mean_us": sum(took) / records / 1000,
        "bytes_per_record": size / records,
    }


def main(argv: list[str]) -> None:
    fsync = "--fsync" in argv
    figures = measure(2_000 if fsync else 50_000, fsync)
    print(" ".join(f"{name}={value:.1f}" for name, value in figures.items()), f"fsync={fsync}")


if __name__ == "__main__":
    main(sys.argv[1:])
