"""The OpenAPI document is the API: what it declares is what the API answers.

Fast: each route declares the statuses it answers, with our error bodies (no FastAPI
default 422 left), and every real error body matches its declared schema; the examples
name the demo's population. Slow, on a home `mlops demo` built: every example of the
document, sent as it is, answers 200, and schemathesis finds no answer the document does
not declare (status, content type, body) and no server error.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import jsonschema
import pandas as pd
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.python.asgi import get_client
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cli.demo import example_transaction
from features.churn_schema import ID_COLUMN
from mlops.demo_population import (
    DEMO_CHURN_CUSTOMERS,
    DEMO_FRAUD_CARDS,
    DEMO_FRAUD_TERMINALS,
    demo_customer_ids,
)
from mlops.settings import Settings
from pipelines.fraud_flow import Simulation
from serving.app import create_app
from serving.errors import InvalidRequest, declared_errors
from serving.openapi import DEMO_PAYMENT
from sources.churn_simulator import simulate_customers

# Every route and the statuses it answers: what a generated client must know.
DECLARED_STATUSES = {
    ("post", "/v1/churn/predict"): {"200", "404", "408", "413", "415", "422", "429", "503"},
    ("post", "/v1/fraud/score"): {"200", "408", "413", "415", "422", "429", "503"},
    ("post", "/v1/churn/predict/batch"): {"200", "408", "413", "415", "422", "429", "503"},
    ("get", "/reports/"): {"200", "429"},
    ("get", "/reports/{page}"): {"200", "404", "429"},
    ("get", "/health/live"): {"200"},
    ("get", "/health/ready"): {"200", "503"},
    ("get", "/v1/churn/model"): {"200", "429", "503"},
    ("get", "/v1/fraud/model"): {"200", "429", "503"},
    ("post", "/admin/reload"): {"200", "401", "408", "413", "429", "502"},
    ("get", "/v2"): {"200", "429"},
    ("get", "/v2/health/live"): {"200"},
    ("get", "/v2/health/ready"): {"200", "503"},
    **{
        operation: statuses
        for model in ("churn", "fraud")
        for base, versioned in (
            (f"/v2/models/{model}", False),
            (f"/v2/models/{model}/versions/{{version}}", True),
        )
        for operation, statuses in (
            (("get", base), {"200", "429", "503"} | ({"404"} if versioned else set())),
            (("get", f"{base}/ready"), {"200", "429", "503"} | ({"404"} if versioned else set())),
            (
                ("post", f"{base}/infer"),
                {"200", "400", "408", "413", "415", "422", "429", "503"}
                | ({"404"} if versioned else set()),
            ),
        )
    },
}
# The Open Inference Protocol's routes answer its error body, and a body they cannot read
# with 400; the one status not an error body there is the readiness probe's 503.
V2_ERROR_REF = "#/components/schemas/InferenceErrorResponse"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }


def _examples(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], Any]]:
    """Every example of the document: (method, path with its parameters, name, body)."""
    found = []
    for (method, path), operation in _operations(document).items():
        for parameter in operation.get("parameters", []):
            for name, example in parameter.get("examples", {}).items():
                filled = path.replace(f"{{{parameter['name']}}}", example["value"])
                found.append((method, filled, name, None))
        content = operation.get("requestBody", {}).get("content", {})
        for name, example in content.get("application/json", {}).get("examples", {}).items():
            found.append((method, path, name, example["value"]))
    return found


def test_each_route_declares_the_statuses_it_answers_with_our_bodies(settings: Settings) -> None:
    document = create_app(settings).openapi()
    operations = _operations(document)
    assert {key: set(op["responses"]) for key, op in operations.items()} == DECLARED_STATUSES
    assert not {"HTTPValidationError", "ValidationError"} & set(document["components"]["schemas"])
    for (method, path), operation in operations.items():
        for status, response in operation["responses"].items():
            probe = (path, status) in {("/health/ready", "503"), ("/v2/health/ready", "503")}
            if path.startswith("/v2") and status.startswith(("4", "5")) and not probe:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": V2_ERROR_REF}, f"{method} {path} {status}"
            elif status.startswith(("4", "5")) and not probe:
                errors = declared_errors(response)
                assert errors, f"{method} {path} {status}: not one of our error bodies"
                assert {str(e.status_code) for e in errors} == {status}
    body = operations[("post", "/v1/churn/predict")]["requestBody"]["content"]
    assert "application/json" in body


def test_every_error_body_the_api_answers_matches_its_declared_schema(settings: Settings) -> None:
    document = create_app(settings).openapi()
    schemas = document["components"]["schemas"]
    declared = {
        error
        for operation in _operations(document).values()
        for response in operation["responses"].values()
        for error in declared_errors(response)
    }
    assert len(declared) == 13
    for error in declared - {InvalidRequest}:
        body = json.loads(bytes(error("what went wrong").response().body))
        # The component, resolved in the document it belongs to.
        jsonschema.validate(body, {**schemas[error.__name__], "components": {"schemas": schemas}})
        v2_body = json.loads(bytes(error("what went wrong").response("/v2/models/churn").body))
        jsonschema.validate(v2_body, schemas["InferenceErrorResponse"])
        assert v2_body == {"error": "what went wrong"}


def test_the_examples_name_the_demo_population(settings: Settings) -> None:
    examples = {
        (path, name): body for _, path, name, body in _examples(create_app(settings).openapi())
    }
    simulated = simulate_customers(DEMO_CHURN_CUSTOMERS, seed=settings.seed)[ID_COLUMN]
    assert demo_customer_ids(settings.seed) == simulated.tolist()
    assert examples[("/v1/churn/predict", "customer_id")] == {"customer_id": simulated.iloc[-1]}
    assert examples[("/v1/churn/predict/batch", "customer_ids")] == {
        "customer_ids": simulated.iloc[-3:].tolist()
    }
    assert set(examples[("/v1/churn/predict", "raw_fields")]) == {"customer"}
    payment = examples[("/v1/fraud/score", "payment")]
    assert payment["customer_id"] < DEMO_FRAUD_CARDS
    assert payment["terminal_id"] < DEMO_FRAUD_TERMINALS
    history = Simulation()
    history_end = pd.Timestamp(history.start, tz="UTC") + pd.Timedelta(days=history.days)
    assert datetime.fromisoformat(payment["tx_datetime"]) >= history_end


@pytest.mark.slow
def test_every_example_of_the_document_answers_200_on_the_demo(
    demo_run: dict[str, Any], demo_settings: Settings
) -> None:
    with TestClient(create_app(demo_settings)) as client:
        examples = _examples(client.get("/openapi.json").json())
        assert len(examples) == 8
        for method, path, name, body in examples:
            response = client.request(method, path, json=body)
            assert response.status_code == 200, f"{method} {path} {name}: {response.text}"
    # The documented payment is the one the demo prints, its busiest card's usual terminal.
    as_of = demo_run["fraud"]["online_state_as_of"]
    assert example_transaction(demo_settings, as_of) == DEMO_PAYMENT


@pytest.mark.slow
def test_the_api_answers_as_its_document_says(demo_settings: Settings) -> None:
    """Schemathesis, in-process, on every operation: each answer is declared, status,
    content type and body, and none is a server error."""
    app = create_app(demo_settings)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {(op.method.lower(), op.path) for op in operations} == set(DECLARED_STATUSES)
    examples: dict[tuple[str, str], list[Any]] = {}
    for method, path, _, body in _examples(schema.raw_schema):
        examples.setdefault((method, path), []).append(body)
    statuses: dict[str, set[int]] = {}
    started, cases = time.perf_counter(), 0
    # One client for the whole run: the app starts once, as a server would, instead of
    # running its lifespan (model loads, log writer) around every generated case.
    with get_client(app) as client:

        def answer(case: schemathesis.Case) -> None:
            nonlocal cases
            cases += 1
            response = case.call(session=client)
            statuses.setdefault(f"{case.method} {case.path}", set()).add(response.status_code)
            case.validate_response(response, checks=CHECKS)

        for operation in operations:
            # Invalid data only where there is something to get wrong: a body.
            modes = [GenerationMode.POSITIVE]
            if operation.body:
                modes.append(GenerationMode.NEGATIVE)
            for mode in modes:

                @given(case=operation.as_strategy(generation_mode=mode))
                @hypothesis_settings(
                    max_examples=30,
                    deadline=None,
                    suppress_health_check=list(HealthCheck),
                    database=None,
                )
                def conforms(case: schemathesis.Case) -> None:
                    answer(case)

                conforms()
            if operation.body:
                # What generated data seldom or never sends: a body that answers (the
                # documented examples), one not sent as JSON, one too big.
                # A version's routes have no example: any version will do for these.
                path = {"version": "1"} if "{version}" in operation.path else None
                for example in examples.get((operation.method.lower(), operation.path), []):
                    answer(operation.Case(body=example, media_type="application/json"))
                answer(
                    operation.Case(
                        path_parameters=path, body="customer_id=1", media_type="text/plain"
                    )
                )
                too_big = {"customer_ids": ["x" * 60] * (demo_settings.max_body_bytes // 60)}
                answer(
                    operation.Case(
                        path_parameters=path, body=too_big, media_type="application/json"
                    )
                )
    seconds = time.perf_counter() - started
    print(f"schemathesis: {cases} cases in {seconds:.1f} s")  # shown with -s
    # Fuzzed against loaded models and live stores, not an API answering 503 to all.
    for path in ("/v1/churn/predict", "/v1/fraud/score", "/v1/churn/predict/batch"):
        assert {200, 413, 415, 422} <= statuses[f"POST {path}"], statuses
