"""The case studies, each declared once: what the CLI, the flows, monitoring and reports read.

A case study is a model the platform trains, serves and watches end to end. Its entry
says what differs between them: its registered model, its MLflow experiment, its
pipeline flow, its API routes, the metric that ranks its models, how late its labels
come, and how its decision threshold is chosen. The code of a case study (its data
contract, features, training and predictor) lives in the stage packages; this table is
how the shared machinery finds it. docs/architecture.md lists what adding a third
case study takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from mlops.settings import Settings

CaseStudyName = Literal["churn", "fraud"]


@dataclass(frozen=True)
class CaseStudy:
    """One case study of the platform (see the module doc)."""

    name: CaseStudyName
    """Its key everywhere: CLI choices, `MLOPS_SERVED_MODELS`, API paths, page names."""
    title: str
    model_name_setting: str
    """The `Settings` field that names its registered model (`churn_model_name`)."""
    experiment: str
    """The MLflow experiment its pipeline runs in."""
    pipeline_flow: str
    """Its training pipeline, the Prefect flow as `module:attribute`."""
    score_route: str
    """The API route that scores one request."""
    primary_metric: str
    """The metric that ranks its models (`mlops.names.METRICS`): the promotion gate at
    registration, the challenger test on live labels and the monitoring's decay check."""
    headline_metrics: tuple[str, ...]
    """The test metrics a person is shown first (CLI summaries, the walkthrough page)."""
    label_delay_days: float
    """How long after a prediction its label arrives (traffic files labels due then)."""
    threshold_rule: Literal["max_f1", "min_expected_cost"]
    """How its decision threshold is chosen: best F1 on out-of-fold scores, or the lowest
    expected cost under the settings' costs."""
    deployment_parameters: dict[str, Any] = field(default_factory=dict)
    """Arguments of its pipeline flow in the stack: the scheduled deployment and the
    first-start bootstrap train at this size."""
    bootstrap_options: tuple[str, ...] = ()
    """`mlops pipeline <name>` options that give the same size as `deployment_parameters`."""

    @property
    def model_route(self) -> str:
        """The API route that describes the served model."""
        return f"/v1/{self.name}/model"

    def model_name(self, settings: Settings) -> str:
        """Its registered model's name under `settings`."""
        return str(getattr(settings, self.model_name_setting))


CHURN: Final = CaseStudy(
    name="churn",
    title="Customer churn",
    model_name_setting="churn_model_name",
    experiment="churn",
    pipeline_flow="pipelines.churn_flow:churn_pipeline",
    score_route="/v1/churn/predict",
    primary_metric="roc_auc",
    headline_metrics=("roc_auc", "average_precision", "f1", "recall"),
    label_delay_days=30.0,  # a billing cycle
    threshold_rule="max_f1",
)

FRAUD: Final = CaseStudy(
    name="fraud",
    title="Card fraud",
    model_name_setting="fraud_model_name",
    experiment="fraud",
    pipeline_flow="pipelines.fraud_flow:fraud_pipeline",
    score_route="/v1/fraud/score",
    primary_metric="average_precision",
    headline_metrics=("roc_auc", "average_precision", "card_precision_at_100"),
    label_delay_days=7.0,  # an investigation
    threshold_rule="min_expected_cost",
    # A fifth of the Handbook's cards and terminals, like `mlops demo`.
    deployment_parameters={"simulation": {"customers": 1000, "terminals": 2000}},
    bootstrap_options=("--customers", "1000", "--terminals", "2000"),
)

CASE_STUDIES: Final[Mapping[CaseStudyName, CaseStudy]] = MappingProxyType(
    {study.name: study for study in (CHURN, FRAUD)}
)


def case_study(name: str) -> CaseStudy:
    """The case study called `name`; ValueError naming the known ones otherwise."""
    for study in CASE_STUDIES.values():
        if study.name == name:
            return study
    raise ValueError(f"unknown case study {name!r}; known: {', '.join(CASE_STUDIES)}")
