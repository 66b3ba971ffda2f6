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
from serving.errors import ModelLoadFailed, ModelNotReady, Unauthorized, error_responses
from serving.model_holder import LoadFailure, ModelHolder
from serving.schemas import LoadError, ModelInfo, ModelState, ReloadOutcome

logger = logging.getLogger("serving")

# The model-info route's description says what the threshold of a case study's model is.
_THRESHOLD_WORDS: Final = {
    "max_f1": "threshold and test metrics",
    "min_expected_cost": "cost-chosen threshold, test metrics",
}


async def admin_reload(models: ModelsDep, settings: SettingsDep) -> dict[str, ReloadOutcome]:
    """Follow the champion aliases now, without waiting for the next refresh.

    A version that fails to load is tried again; if it still fails, the answer is a 502
    `model_load_failed` naming it and why, and the version served before keeps serving.
    """
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
        responses=error_responses(Unauthorized, ModelLoadFailed),
    )


def _model_info_endpoint(name: CaseStudyName) -> Callable[..., ModelInfo]:
    def model_info(models: ModelsDep) -> ModelInfo:
        return model_info_of(models[name])

    return model_info


def _model_info_description(study: CaseStudy) -> str:
    threshold = _THRESHOLD_WORDS[study.threshold_rule]
    return f"The served {study.name} model: version, features, {threshold}."


def model_info_of(holder: ModelHolder) -> ModelInfo:
    """What `holder` serves: name, version and alias, features, threshold and test metrics,
    and the last failure to follow the alias; `ModelNotReady` when nothing is loaded."""
    model = holder.current
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
        alias_version=holder.alias_version,
        last_load_error=load_error_of(holder.last_failure),
    )


def model_state_of(holder: ModelHolder) -> ModelState:
    """How `holder` follows its alias: what it serves, what the alias names, the last error."""
    return ModelState(
        version=holder.loaded_version,
        alias_version=holder.alias_version,
        matches_alias=holder.matches_alias,
        last_load_error=load_error_of(holder.last_failure),
    )


def load_error_of(failure: LoadFailure | None) -> LoadError | None:
    if failure is None:
        return None
    return LoadError(version=failure.version, reason=failure.reason, failed_at=failure.at)


def reload_models(holders: list[ModelHolder], settings: Settings) -> dict[str, ReloadOutcome]:
    """Make each holder follow its alias now; what each serves afterwards, by model name.

    `ModelLoadFailed` when an alias's version fails to load (each holder is tried first).
    """
    outcomes = {}
    failed = []
    for holder in holders:
        changed = holder.refresh(settings, retry=True)
        outcomes[holder.name] = ReloadOutcome(
            version=holder.loaded_version, changed=changed, error=holder.last_error
        )
        if changed:
            logger.info("reload: now serving %s v%s", holder.name, holder.loaded_version)
        failure = holder.last_failure
        if failure is not None and failure.version is not None:
            failed.append(failure.describe(holder.name, holder.alias))
    if failed:
        serving = ", ".join(
            f"{name} v{outcome.version}" if outcome.version else f"{name} none"
            for name, outcome in outcomes.items()
        )
        raise ModelLoadFailed(f"{'; '.join(failed)}. Serving now: {serving}.")
    return outcomes
