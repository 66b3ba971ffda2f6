"""The Open Inference Protocol (KServe "V2") over the served models: metadata and inference.

Each case study's model is a V2 model named after it (`churn`, `fraud`). Its versions are
the ones served now: the champion's, and the challenger's when an online experiment
serves one; any other version is unknown (404). Its one input, `features`, is the feature
matrix: FP32, shape [n, number of features], in the order of the bundle's feature names,
which the metadata lists (they are the columns of the signature the model was registered
with; the bundle, all that serving downloads, keeps the names, not the signature). Its
outputs are `probabilities` (FP32 [n]) and `decisions` (BOOL [n]: probability at or
above the model's threshold).

Inference is the batch route's hot path without the feature read: the rows go to the
loaded model's onnxruntime session as one float32 matrix, and each scored row is logged
like a /v1 prediction before the answer goes out (503 if the log cannot take them). No
pandas. Features that are not finite numbers, or a tensor of another name, datatype or
shape, are a 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from pydantic import BaseModel, Field

from mlops.case_studies import CHURN, FRAUD, CaseStudyName
from mlops.prediction_log import Prediction, PredictionLog, PredictionNotPersisted
from serving.challenger import ChallengerArm
from serving.errors import InvalidInput, InvalidTensor, PredictionLogUnavailable, UnknownModel
from serving.metrics import Metrics
from serving.model_holder import LoadedModel, ModelHolder

INPUT_NAME: Final = "features"
PROBABILITIES: Final = "probabilities"
DECISIONS: Final = "decisions"
PLATFORM: Final = "onnxruntime"
FP32: Final = "FP32"
# One request's rows are scored in one call: bounded like the batch route's
# (`serving.routes.churn_batch.MAX_BATCH_ROWS`), so one request cannot hold a worker long.
MAX_INFER_ROWS: Final = 1000
# A V2 request names no entity: its rows are logged with the entity keys of the case
# study's /v1 predictions, empty, as the batch route logs customers sent by their fields.
LOGGED_ENTITY: Final[Mapping[CaseStudyName, Mapping[str, None]]] = {
    CHURN.name: {"customer_id": None},
    FRAUD.name: {"transaction_id": None, "customer_id": None, "terminal_id": None},
}


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 for a dimension of any size.")
    parameters: dict[str, Any] | None = None


class ModelMetadata(BaseModel):
    """A model's metadata response: its served versions, input and outputs."""

    name: str
    versions: list[str] = Field(description="The versions served now: champion, challenger.")
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any] = Field(
        description="The registered model, the threshold behind `decisions`, the features."
    )


class RequestInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] = Field(description="Row-major, flat or nested as the shape.")


class RequestOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    """Feature rows as one FP32 tensor named `features`, of shape [n, features]."""

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = Field(
        default=None, description="The outputs to answer; all of them when absent."
    )


class ResponseOutput(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    data: list[float] | list[bool]


class InferenceResponse(BaseModel):
    """The outputs, with the version that answered and the request's `id` if it had one."""

    model_name: str
    model_version: str
    # The protocol's `id` is a string when present: absent, not null, when not given.
    id: str | None = Field(default=None, exclude_if=lambda value: value is None)
    outputs: list[ResponseOutput]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class LiveResponse(BaseModel):
    live: bool


class ReadyResponse(BaseModel):
    ready: bool


@dataclass(frozen=True)
class ServedModel:
    """One case study's served versions, as the protocol sees them."""

    name: CaseStudyName
    holder: ModelHolder
    challenger: ChallengerArm | None

    def versions(self) -> list[LoadedModel]:
        """The champion, then the challenger if one is loaded; `ModelNotReady` if no champion."""
        champion = self.holder.current
        models = [champion]
        arm = self.challenger
        if arm is not None and arm.holder.ready and arm.holder.current.version != champion.version:
            models.append(arm.holder.current)
        return models

    def model(self, version: str | None) -> LoadedModel:
        """The served `version` (the champion when None); `UnknownModel` if not served."""
        models = self.versions()
        if version is None:
            return models[0]
        for model in models:
            if model.version == version:
                return model
        served = ", ".join(m.version for m in models)
        raise UnknownModel(
            f"model '{self.name}' does not serve version '{version}' (it serves {served})"
        )

    def metadata(self, version: str | None) -> ModelMetadata:
        """The metadata of `version` (of the champion when None)."""
        model = self.model(version)
        names = model.bundle.meta.feature_names
        return ModelMetadata(
            name=self.name,
            versions=[version] if version is not None else [m.version for m in self.versions()],
            platform=PLATFORM,
            inputs=[
                TensorMetadata(
                    name=INPUT_NAME,
                    datatype=FP32,
                    shape=[-1, len(names)],
                    parameters={"feature_names": names},
                )
            ],
            outputs=[
                TensorMetadata(name=PROBABILITIES, datatype=FP32, shape=[-1]),
                TensorMetadata(name=DECISIONS, datatype="BOOL", shape=[-1]),
            ],
            parameters={
                "registered_model": model.bundle.name,
                "alias": model.alias,
                "threshold": model.threshold,
                "feature_names": names,
            },
        )


def feature_matrix(request: InferenceRequest, feature_count: int) -> np.ndarray:
    """The request's one input as a float32 matrix [n, `feature_count`]; `InvalidTensor`
    (400) when it is not one finite FP32 tensor of that shape, of 1 to MAX_INFER_ROWS rows."""
    if len(request.inputs) != 1 or request.inputs[0].name != INPUT_NAME:
        given = [tensor.name for tensor in request.inputs]
        raise InvalidTensor(f"the model takes one input, '{INPUT_NAME}'; the request has {given}")
    tensor = request.inputs[0]
    if tensor.datatype != FP32:
        raise InvalidTensor(f"input '{INPUT_NAME}' is {FP32}, not {tensor.datatype}")
    expected = f"[n, {feature_count}] with n from 1 to {MAX_INFER_ROWS}"
    if (
        len(tensor.shape) != 2
        or tensor.shape[1] != feature_count
        or not 1 <= tensor.shape[0] <= MAX_INFER_ROWS
    ):
        raise InvalidTensor(f"input '{INPUT_NAME}' has shape {expected}, not {tensor.shape}")
    rows = tensor.shape[0]
    try:
        values = np.asarray(tensor.data)
    except ValueError:  # nested lists of different lengths
        raise InvalidTensor(f"the data of '{INPUT_NAME}' is not a tensor of {expected}") from None
    # Numbers only: numpy would read a string or a None into a float32 array too.
    if values.dtype.kind not in "iuf":
        raise InvalidTensor(f"the data of '{INPUT_NAME}' holds other things than numbers")
    flat_or_rows = values.ndim == 1 or values.shape == (rows, feature_count)
    if values.size != rows * feature_count or not flat_or_rows:
        raise InvalidTensor(
            f"the data of '{INPUT_NAME}' has {values.size} values in shape {list(values.shape)}, "
            f"not {rows} rows of {feature_count}"
        )
    with np.errstate(over="ignore", invalid="ignore"):  # too large for float32: checked next
        matrix = values.astype(np.float32).reshape(rows, feature_count)
    if not np.isfinite(matrix).all():
        raise InvalidTensor(f"the features of '{INPUT_NAME}' must be finite float32 numbers")
    return matrix


@dataclass(frozen=True)
class InferenceLog:
    """Where one request's predictions are logged: under its id, its route, its metrics."""

    log: PredictionLog
    metrics: Metrics
    request_id: str
    endpoint: str

    def record(
        self, model: LoadedModel, entity: Mapping[str, None], rows: np.ndarray, scores: np.ndarray
    ) -> None:
        """Observe and spool one prediction per row; `PredictionLogUnavailable` (503) if the
        log cannot take one, so the request is not answered."""
        names = model.bundle.meta.feature_names
        observe = self.metrics.scores.labels(model.bundle.name).observe
        try:
            for row, score in zip(rows, scores.tolist(), strict=True):
                observe(score)
                self.log.append(
                    Prediction(
                        request_id=self.request_id,
                        endpoint=self.endpoint,
                        model_name=model.bundle.name,
                        model_version=model.version,
                        entity=entity,
                        feature_names=names,
                        feature_values=row.tolist(),
                        score=score,
                        decision=score >= model.threshold,
                    )
                )
        except PredictionNotPersisted as error:
            raise PredictionLogUnavailable(
                "the predictions could not be logged, so they are not answered; retry shortly"
            ) from error


def infer(
    request: InferenceRequest, served: ServedModel, version: str | None, log: InferenceLog
) -> InferenceResponse:
    """Score the request's feature rows with the served `version` (the champion when None),
    log each row, and answer the outputs asked for (all when the request names none)."""
    model = served.model(version)
    names = model.bundle.meta.feature_names
    wanted = [output.name for output in request.outputs or ()] or [PROBABILITIES, DECISIONS]
    unknown = sorted(set(wanted) - {PROBABILITIES, DECISIONS})
    if unknown:
        outputs = f"'{PROBABILITIES}' and '{DECISIONS}'"
        raise InvalidTensor(f"the model's outputs are {outputs}, not {unknown}")
    matrix = feature_matrix(request, len(names))
    probabilities = model.scorer.predict_proba(matrix)
    if not np.isfinite(probabilities).all():
        raise InvalidInput("the model gives no finite score for some rows")
    log.record(model, LOGGED_ENTITY[served.name], matrix, probabilities)
    rows = len(matrix)
    tensors = {
        PROBABILITIES: ResponseOutput(
            name=PROBABILITIES, datatype=FP32, shape=[rows], data=probabilities.tolist()
        ),
        DECISIONS: ResponseOutput(
            name=DECISIONS,
            datatype="BOOL",
            shape=[rows],
            data=(probabilities >= model.threshold).tolist(),
        ),
    }
    return InferenceResponse(
        model_name=served.name,
        model_version=model.version,
        id=request.id,
        outputs=[tensors[name] for name in dict.fromkeys(wanted)],
    )
