"""A benchmark bound, not part of the platform: the churn route's HTTP stack doing no work.

`POST /v1/churn/predict` with the request and response models of the prediction API
(`serving.schemas`), in a plain FastAPI app under uvicorn with httptools and no access
log, as `mlops serve` runs: it validates the body, then answers one constant prediction.
No feature read, no model, no log, no metrics. What it serves is about the most any
Python API on FastAPI and uvicorn can serve on the machine; `mlops bench serving` drives
it with our bodies beside our API, and ours over its req/s (`ratios`,
`rps_c16_ours_over_ceiling`) is the share of that ceiling the API reaches.

    python -m benchmarks.ceiling_app 8124
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI

from mlops.case_studies import CHURN
from serving.schemas import ChurnPrediction, ChurnPredictRequest, ModelRef

_MODEL = ModelRef(name="churn", version="0")


def create_ceiling_app() -> FastAPI:
    """`GET /health` and a `POST /v1/churn/predict` that validates and answers a constant."""
    app = FastAPI(title="ceiling: the churn route's request and response models, no work")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(CHURN.score_route)
    async def predict(body: ChurnPredictRequest) -> ChurnPrediction:
        return ChurnPrediction(
            customer_id=body.customer_id,
            churn_probability=0.5,
            will_churn=False,
            threshold=0.5,
            feature_source="online_store",
            model=_MODEL,
        )

    return app


def main(argv: list[str]) -> None:
    """Serve on 127.0.0.1:`PORT` until stopped."""
    (port,) = argv
    uvicorn.run(
        create_ceiling_app(),
        host="127.0.0.1",
        port=int(port),
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main(sys.argv[1:])
