"""A benchmark baseline, not part of the platform: the naive model endpoint users write first.

It loads the registered native model (the MLflow sklearn or XGBoost flavour that
training logged) and, per request, builds a one-row pandas DataFrame from the posted
features and calls `predict_proba` on it. `mlops bench serving` measures it beside our
API (online read + ONNX) and `mlflow models serve`, on the same registered version.

    python -m benchmarks.naive_app models:/churn@champion 8123

MLFLOW_TRACKING_URI must point at the registry holding the model.
"""

from __future__ import annotations

import sys
from typing import Any

import mlflow
import pandas as pd
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel


class NaiveRequest(BaseModel):
    """The model's features by name, as the naive baseline takes them."""

    features: dict[str, float]


class NaivePrediction(BaseModel):
    """The positive-class probability."""

    probability: float


def create_naive_app(model_uri: str) -> FastAPI:
    """The baseline app for the MLflow model at `model_uri`: `GET /health`, `POST /predict`."""
    model: Any = mlflow.pyfunc.load_model(model_uri).get_raw_model()
    app = FastAPI(title="naive baseline: native model, one-row DataFrame per request")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict")
    def predict(request: NaiveRequest) -> NaivePrediction:
        frame = pd.DataFrame([request.features])
        return NaivePrediction(probability=float(model.predict_proba(frame)[0, 1]))

    return app


def main(argv: list[str]) -> None:
    """Serve `MODEL_URI PORT` on 127.0.0.1 until stopped."""
    model_uri, port = argv
    uvicorn.run(create_naive_app(model_uri), host="127.0.0.1", port=int(port), log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
