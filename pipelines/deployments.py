"""The Prefect deployments the stack's worker serves (`mlops flows serve`).

One entry per deployment: the flow by import path, its default parameters and an optional
schedule: each case study's pipeline (from `mlops.case_studies`), then each one's
scheduled monitoring flow and label delivery (every `MLOPS_MONITOR_INTERVAL_S`; in the
stack every `MLOPS_STACK_MONITOR_INTERVAL_S`, `stack.services`). Add a deployment by
adding an entry to `DEPLOYMENTS`; the worker serves every entry, and `prefect deployment
run '<flow name>/<deployment name>'` runs one on it.
"""

from __future__ import annotations

import copy
import importlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from mlops.case_studies import CASE_STUDIES
from mlops.settings import Settings


@dataclass(frozen=True)
class DeploymentSpec:
    """One Prefect deployment: the flow it runs, its parameters and its schedule if any."""

    name: str
    flow: str  # "module:attribute" of a Prefect flow
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)
    cron: str | None = None
    interval: timedelta | None = None


# Each case study's training pipeline, at the stack's size (`CaseStudy.deployment_parameters`).
DEPLOYMENTS: list[DeploymentSpec] = [
    DeploymentSpec(
        name=study.name,
        flow=study.pipeline_flow,
        description=f"{study.title}: the case study's pipeline on simulated data.",
        parameters=copy.deepcopy(study.deployment_parameters),
    )
    for study in CASE_STUDIES.values()
]


def build(spec: DeploymentSpec) -> Any:
    """The spec as a Prefect `RunnerDeployment` (imports the flow's module)."""
    from prefect.deployments.runner import EntrypointType

    module, attribute = spec.flow.split(":")
    flow = getattr(importlib.import_module(module), attribute)
    return flow.to_deployment(
        name=spec.name,
        description=spec.description,
        parameters=spec.parameters,
        cron=spec.cron,
        interval=spec.interval,
        tags=["mlops"],
        # By module, not file path: the same wherever the package is installed or run from.
        entrypoint_type=EntrypointType.MODULE_PATH,
    )


# Each model's scheduled flows, every MLOPS_MONITOR_INTERVAL_S: (deployment name prefix,
# flow, description). The labels that fall due, then the check that reads them.
SCHEDULED_FLOWS: tuple[tuple[str, str, str], ...] = (
    (
        "monitor",
        "pipelines.monitoring_flow:monitor_model",
        "Check the {model} champion's traffic, decide, retrain and test the challenger.",
    ),
    (
        "labels",
        "pipelines.label_flow:ingest_labels",
        "Deliver the {model} labels that are due and join them to the predictions.",
    ),
)


def scheduled_deployments(settings: Settings | None = None) -> list[DeploymentSpec]:
    """`SCHEDULED_FLOWS` for each model, every `monitor_interval_s` (a setting: they are
    built when the runner starts, not when this module loads)."""
    settings = settings or Settings()
    interval = timedelta(seconds=settings.monitor_interval_s)
    return [
        DeploymentSpec(
            name=f"{prefix}-{model}",
            flow=flow,
            description=description.format(model=model),
            parameters={"model": model},
            interval=interval,
        )
        for prefix, flow, description in SCHEDULED_FLOWS
        for model in CASE_STUDIES
    ]


def all_deployments() -> list[DeploymentSpec]:
    """`DEPLOYMENTS`, then the scheduled ones: each model's monitoring, then its labels."""
    return [*DEPLOYMENTS, *scheduled_deployments()]


def serve_deployments(specs: list[DeploymentSpec] | None = None, *, limit: int = 1) -> None:
    """Register the deployments with the Prefect server and run their flow runs until stopped.

    One run at a time by default: each pipeline uses every core it is given.
    """
    from prefect import serve

    serve(*(build(spec) for spec in specs or all_deployments()), limit=limit)
