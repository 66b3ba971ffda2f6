"""`GET /health/live` and `GET /health/ready`: the probes an orchestrator asks."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from serving.deps import CollaboratorsDep, SettingsDep
from serving.routes.models import model_state_of
from serving.schemas import Liveness, Readiness


def live() -> dict[str, str]:
    """The process is up. Depends on nothing else."""
    return {"status": "ok"}


def ready(collaborators: CollaboratorsDep, settings: SettingsDep) -> JSONResponse:
    """Ready when every served model is loaded and its online store answers and still holds
    the last publish (a store restarted empty answers every read, with nothing), and the
    prediction log can persist what is answered (its spool neither full nor failing).

    `models` says per model which version serves and whether it is the alias's: one kept
    after a promotion failed to load still answers, so it does not make the API unready.
    """
    models, features = collaborators.models, collaborators.features
    checks: dict[str, bool] = {}
    feature_errors: dict[str, str] = {}
    for name in settings.served_models:
        checks[f"{name}_model"] = models[name].ready
        problem = features[name].health()
        checks[f"{name}_features"] = problem is None
        if problem is not None:
            feature_errors[name] = problem
    checks["prediction_log"] = collaborators.log.persisting
    body: dict[str, Any] = {"ready": all(checks.values()), "checks": checks}
    if collaborators.log.problem is not None:
        body["prediction_log_error"] = collaborators.log.problem
    errors = {n: models[n].last_error for n in settings.served_models if models[n].last_error}
    if errors:
        body["model_errors"] = errors
    if feature_errors:
        body["feature_errors"] = feature_errors
    body["models"] = {
        name: model_state_of(models[name]).model_dump(mode="json")
        for name in settings.served_models
    }
    return JSONResponse(body, status_code=200 if body["ready"] else 503)


def add_health_routes(app: FastAPI) -> None:
    """Add the liveness and readiness probes to `app`."""
    # The bodies are declared, not validated: the probes answer plain dicts, unchecked.
    app.add_api_route(
        "/health/live",
        live,
        methods=["GET"],
        tags=["health"],
        response_model=None,
        responses={200: {"model": Liveness}},
    )
    app.add_api_route(
        "/health/ready",
        ready,
        methods=["GET"],
        tags=["health"],
        responses={
            200: {"model": Readiness, "description": "Every served model answers."},
            503: {"model": Readiness, "description": "Not ready: `checks` says what is not."},
        },
    )
