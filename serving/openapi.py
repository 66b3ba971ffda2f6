"""The API's OpenAPI document: every status a route answers, with the body it answers.

FastAPI builds the document from the routes and what each declares (its response model,
and `responses=serving.errors.error_responses(...)` for the errors only it can answer).
This module completes it with what holds for every route, from the code that answers it:

- `BoundedRequests` (`serving.middleware`) answers 429 on every path but
  `UNBOUNDED_PATHS`, and 413 and 408 (a body too slow to arrive) to those of them that
  take a body; a route with a JSON body
  answers 415 when the body is not JSON and 422 `invalid_request` when it does not
  validate (`serving.errors`), in place of the `HTTPValidationError` FastAPI declares
  by default, which is not what the API answers;
- the error bodies are components named after their `ApiError` classes;
- the request bodies of the scoring routes carry examples that answer on the home
  `mlops demo` builds: customers of the demo's simulated population, derived from the
  settings' seed (`mlops.demo_population`), and a customer's raw fields;
- the Open Inference Protocol's routes (`serving.routes.v2`) answer their errors in the
  protocol's body (`InferenceErrorResponse`) and a body they cannot read with 400, not
  422; their infer bodies carry feature rows of the examples above as examples.

The document is built once, on the first request for it; nothing here runs per request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import numpy as np
from fastapi import FastAPI

from features.churn_transforms import CHURN_FEATURES, churn_features
from features.fraud_online import CustomerHistory, TerminalHistory, epoch_ns, online_fraud_features
from features.fraud_windows import FRAUD_FEATURES
from mlops.case_studies import CHURN, FRAUD, CaseStudyName
from mlops.demo_population import demo_customer_ids
from serving.errors import (
    SCHEMA_REF,
    ApiError,
    InvalidRequest,
    Overloaded,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
    V2ErrorBody,
    body_model,
    declared_errors,
    error_response,
    is_v2_path,
)
from serving.middleware import UNBOUNDED_PATHS
from serving.open_inference import FP32, INPUT_NAME
from serving.routes.churn_batch import BATCH_ROUTE
from serving.routes.v2 import model_path
from serving.schemas import ChurnCustomer, FraudTransaction

# The methods whose body `BoundedRequests` limits (it reads one of unannounced length).
BODY_METHODS: Final = frozenset({"post", "put", "patch"})
JSON_BODY_ERRORS: Final[tuple[type[ApiError], ...]] = (UnsupportedMediaType, InvalidRequest)
# The component of the Open Inference Protocol's error body.
V2_ERROR: Final = "InferenceErrorResponse"
# FastAPI's default 422 body, {"detail": [{"loc", "msg", "type"}]}, and its parts.
_FASTAPI_VALIDATION_SCHEMAS: Final = ("HTTPValidationError", "ValidationError")

# A month-to-month DSL customer in their second year, as the Telco CSV spells the fields.
RAW_CUSTOMER: Final[dict[str, Any]] = {
    "gender": "Female",
    "SeniorCitizen": 0,
    "Partner": "Yes",
    "Dependents": "No",
    "tenure": 14,
    "PhoneService": "Yes",
    "MultipleLines": "No",
    "InternetService": "DSL",
    "OnlineSecurity": "No",
    "OnlineBackup": "Yes",
    "DeviceProtection": "No",
    "TechSupport": "No",
    "StreamingTV": "No",
    "StreamingMovies": "Yes",
    "Contract": "Month-to-month",
    "PaperlessBilling": "Yes",
    "PaymentMethod": "Electronic check",
    "MonthlyCharges": 64.75,
    "TotalCharges": 903.4,
}
# The payment `mlops demo` prints (`cli.demo.example_transaction`): its busiest card at its
# usual terminal, an hour after the online state. It follows from the simulator's seed
# alone, but only through a whole simulation, too much to run here: tests/serving check
# this copy against the demo. A card or terminal never seen is scored too (on empty
# windows), so the example also answers on any other trained fraud home.
DEMO_PAYMENT: Final[dict[str, Any]] = {
    "customer_id": 183,
    "terminal_id": 792,
    "amount": 25.19,
    "tx_datetime": "2018-10-01T00:58:54Z",
}


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` (and `GET /openapi.json`) answer the completed document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            # FastAPI's own build, which caches its document on the app: completed in place.
            complete_document(FastAPI.openapi(app), seed=app.state.settings.seed)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def complete_document(document: dict[str, Any], seed: int) -> None:
    """Declare the errors every route shares and the error bodies; add the examples."""
    referenced: set[type[ApiError]] = set()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            declared = _declare_shared_errors(path, method, operation)
            if is_v2_path(path):
                _answer_errors_as_v2(operation)
            else:
                referenced |= declared
    examples = request_examples(seed)
    for path, named in examples.items():
        post = document["paths"][path]["post"]
        post["requestBody"]["content"]["application/json"]["examples"] = named
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    schemas[V2_ERROR] = V2ErrorBody.model_json_schema()
    for error in sorted(referenced, key=lambda e: e.__name__):
        schema = body_model(error).model_json_schema(ref_template=f"{SCHEMA_REF}{{model}}")
        schemas.update(schema.pop("$defs", {}))
        schemas[error.__name__] = schema
    document["components"]["schemas"] = dict(sorted(schemas.items()))


def _declare_shared_errors(
    path: str, method: str, operation: dict[str, Any]
) -> set[type[ApiError]]:
    """Add the errors every route of its kind answers to `operation`; all it declares."""
    responses: dict[str, Any] = operation["responses"]
    bounded = path not in UNBOUNDED_PATHS
    # The protocol's routes answer a body they cannot read with their own 400.
    body_errors = (UnsupportedMediaType,) if is_v2_path(path) else JSON_BODY_ERRORS
    shared = [
        *((PayloadTooLarge, RequestTimeout) if bounded and method in BODY_METHODS else ()),
        *((Overloaded,) if bounded else ()),
        *(body_errors if "requestBody" in operation else ()),
    ]
    by_status: dict[str, list[type[ApiError]]] = {}
    for status, response in list(responses.items()):
        declared = declared_errors(response)
        if declared:
            by_status[status] = declared
        elif status == "422":  # FastAPI's default: the API never answers that body
            del responses[status]
    for error in shared:
        errors = by_status.setdefault(str(error.status_code), [])
        if error not in errors:
            # The request's own validation first: it is answered before the route runs.
            errors.insert(0 if error is InvalidRequest else len(errors), error)
    for status, errors in by_status.items():
        responses[status] = error_response(errors)
    operation["responses"] = dict(sorted(responses.items()))
    return {error for errors in by_status.values() for error in errors}


def _answer_errors_as_v2(operation: dict[str, Any]) -> None:
    """Each error `operation` declares, answered in the protocol's body (`error_body`)."""
    for response in operation["responses"].values():
        if declared_errors(response):
            response["content"] = {
                "application/json": {"schema": {"$ref": f"{SCHEMA_REF}{V2_ERROR}"}}
            }


def v2_feature_rows(model: CaseStudyName) -> list[list[float]]:
    """Feature rows for model `model`'s V2 infer example, in its features' order.

    Churn: the customer of the raw-fields example and one on a two-year contract, through
    the training transforms. Fraud: the documented payment as a first one of its card at
    its terminal (empty windows), which needs no history.
    """
    if model == CHURN.name:
        customers = [RAW_CUSTOMER, {**RAW_CUSTOMER, "Contract": "Two year"}]
        columns = {field: np.asarray([c[field] for c in customers]) for field in RAW_CUSTOMER}
        computed = churn_features(columns)
        return [[float(computed[name][i]) for name in CHURN_FEATURES] for i in range(2)]
    moment = datetime.fromisoformat(DEMO_PAYMENT["tx_datetime"])
    features = online_fraud_features(
        CustomerHistory.empty(),
        TerminalHistory.empty(),
        epoch_ns(moment),
        DEMO_PAYMENT["amount"],
        DEMO_PAYMENT["terminal_id"],
    )
    return [[features[name] for name in FRAUD_FEATURES]]


def _v2_infer_example(model: CaseStudyName) -> dict[str, Any]:
    rows = v2_feature_rows(model)
    summary = {
        CHURN.name: "The raw-fields customers' features, one row each",
        FRAUD.name: "The documented payment's features, as its card's first payment",
    }[model]
    tensor = {
        "name": INPUT_NAME,
        "datatype": FP32,
        "shape": [len(rows), len(rows[0])],
        "data": [value for row in rows for value in row],
    }
    return {"features": {"summary": summary, "value": {"id": "example-1", "inputs": [tensor]}}}


def request_examples(seed: int) -> dict[str, dict[str, dict[str, Any]]]:
    """The named request examples of each scoring route, by path: all answer on the demo.

    The customer ids are the last of the demo's simulated population with `seed` (the
    settings' `MLOPS_SEED`, which `mlops demo` simulates with; its curl example is the
    last one): every customer of it is in the online store after `mlops demo`.
    """
    ids = demo_customer_ids(seed)
    # Checked here, when the document is built: an example that does not validate is a bug.
    ChurnCustomer.model_validate(RAW_CUSTOMER)
    FraudTransaction.model_validate(DEMO_PAYMENT)
    return {
        CHURN.score_route: {
            "customer_id": {
                "summary": "A customer of the demo, by id (features from the online store)",
                "value": {"customer_id": ids[-1]},
            },
            "raw_fields": {
                "summary": "A customer's raw fields (features computed from the request)",
                "value": {"customer": RAW_CUSTOMER},
            },
        },
        BATCH_ROUTE: {
            "customer_ids": {
                "summary": "Customers of the demo, by id",
                "value": {"customer_ids": ids[-3:]},
            },
            "raw_fields": {
                "summary": "Customers by their raw fields",
                "value": {"customers": [RAW_CUSTOMER, {**RAW_CUSTOMER, "Contract": "Two year"}]},
            },
        },
        FRAUD.score_route: {
            "payment": {
                "summary": "A payment of the demo's busiest card, after its simulated history",
                "value": DEMO_PAYMENT,
            },
        },
        **{
            f"{model_path(study.name, versioned=False)}/infer": _v2_infer_example(study.name)
            for study in (CHURN, FRAUD)
        },
    }
