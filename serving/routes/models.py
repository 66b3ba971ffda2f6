"""`GET /v1/<case study>/model` for each case study, and `POST /admin/reload`.

The model-info routes say which version answers and how it was chosen; the admin route
makes the served models follow their champion aliases now instead of at the next poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from fastapi import FastAPI

from mlops.case_studies import CASE_STUDIES, CaseStudy, CaseStudyName
from mlops.settings import Settings
from serving.deps import AdminDep, ModelsDep, SettingsDep
from serving.errors import ModelNotReady, Unauthorized, error_responses
from serving.model_holder import LoadedModel, ModelHolder
from serving.schemas import ModelInfo, ReloadOutcome

logger = logging.getLogger("serving")

# The model-info route's description says what the threshold of a case study's model is.
_THRESHOLD_WORDS: Final = {
    "max_f1": "threshold and test metrics",
    "min_expected_cost": "cost-chosen threshold, test metrics",
}


async def admin_reload(models: ModelsDep, settings: SettingsDep) -> dict[str, ReloadOutcome]:
    """Follow the champion aliases now, without waiting for the next refresh."""
    served = [models[name] for name in settings.served_models]
    # Downloading and checking a model is blocking work: keep it off the event loop.
    return await asyncio.to_thread(reload_models, served, settings)


def add_model_routes(app: FastAPI) -> None:
    """Add each case study's model-info route, then the admin reload, to `app`."""
    for study in CASE_STUDIES.values():
        app.add_api_route(
            study.model_route,
            _model_info_endpoint(study.name),
            methods=["GET"],
            response_model=ModelInfo,
            tags=[study.name],
            name=f"{study.name}_model_info",
            description=_model_info_description(study),
            responses=error_responses(ModelNotReady),
        )
    app.add_api_route(
        "/admin/reload",
        admin_reload,
        methods=["POST"],
        tags=["admin"],
        dependencies=[AdminDep],
        responses=error_responses(Unauthorized),
    )


def _model_info_endpoint(name: CaseStudyName) -> Callable[..., ModelInfo]:
    def model_info(models: ModelsDep) -> ModelInfo:
        return model_info_of(models[name].current)

    return model_info


def _model_info_description(study: CaseStudy) -> str:
    threshold = _THRESHOLD_WORDS[study.threshold_rule]
    return f"The served {study.name} model: version, features, {threshold}."


def model_info_of(model: LoadedModel) -> ModelInfo:
    """What `model` is: its name, version and alias, features, threshold and test metrics."""
    meta = model.bundle.meta
    return ModelInfo(
        name=model.bundle.name,
        version=model.bundle.version,
        alias=model.alias,
        candidate=meta.candidate,
        feature_service=meta.feature_service,
        features=meta.feature_names,
        threshold=meta.threshold,
        onnx_sha256=meta.onnx_sha256,
        test_metrics=meta.test_metrics,
    )


def reload_models(holders: list[ModelHolder], settings: Settings) -> dict[str, ReloadOutcome]:
    """Make each holder follow its alias now; what each serves afterwards, by model name."""
    outcomes = {}
    for holder in holders:
        changed = holder.refresh(settings)
        outcomes[holder.name] = ReloadOutcome(
            version=holder.current.version if holder.ready else None,
            changed=changed,
            error=holder.last_error,
        )
        if changed:
            logger.info("reload: now serving %s v%s", holder.name, holder.current.version)
    return outcomes
