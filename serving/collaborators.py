"""What the prediction API works with, built in one place from the settings.

Two parts, by how long they live:

- `Instruments`, the metrics and the access log: the middleware holds them from the
  moment the app is built, so `create_app` builds them (`build_instruments`).
- `Collaborators`, for each case study its champion's model holder (and a challenger's
  in an online experiment) and its online feature client, then the prediction log and
  the predictors the scoring routes hand requests to: the lifespan builds them at each
  start (`build_collaborators`) and starts them in steps (`serving.lifespan`).

Building loads no model, connects to no store and starts no thread: those are the
lifespan's steps. A caller (a test, a benchmark) may hand `create_app` any model holder,
feature client or the log (`Given`); the others are built from the settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from features.churn_frames import ENTITY_KEY
from features.feature_repo.churn import churn_model
from mlops.case_studies import CASE_STUDIES, CHURN, FRAUD, CaseStudyName
from mlops.monitoring_results import MonitoringCollector
from mlops.names import CHALLENGER
from mlops.prediction_log import PredictionLog
from mlops.settings import Settings
from serving.challenger import ChallengerArm
from serving.fraud_features import FraudOnlineFeatures
from serving.metrics import Metrics
from serving.middleware import AccessLog
from serving.model_holder import ModelHolder
from serving.online_features import OnlineFeatures
from serving.predictors import ChurnPredictor, FraudPredictor

if TYPE_CHECKING:
    from feast import FeatureStore


@dataclass(frozen=True)
class Instruments:
    """The app's own metrics (`GET /metrics`) and its access log."""

    metrics: Metrics
    access: AccessLog


@dataclass(frozen=True)
class Given:
    """The collaborators a caller handed `create_app`; None: build it from the settings."""

    churn_model_holder: ModelHolder | None = None
    churn_features_client: OnlineFeatures | None = None
    fraud_model_holder: ModelHolder | None = None
    fraud_features_client: FraudOnlineFeatures | None = None
    prediction_log: PredictionLog | None = None


@dataclass(frozen=True)
class Collaborators:
    """What the routes use during one run of the app, from its start to its shutdown."""

    models: Mapping[CaseStudyName, ModelHolder]
    """The champion's holder of every case study, served or not."""
    challengers: Mapping[CaseStudyName, ChallengerArm | None]
    """The challenger's arm of every case study: None unless served in an online experiment."""
    churn_features: OnlineFeatures
    fraud_features: FraudOnlineFeatures
    store: FeatureStore | None
    """The feature store the clients read, None when both clients were given."""
    log: PredictionLog
    churn_predictor: ChurnPredictor
    fraud_predictor: FraudPredictor

    @property
    def features(self) -> Mapping[CaseStudyName, OnlineFeatures | FraudOnlineFeatures]:
        """The online feature client of every case study."""
        return {CHURN.name: self.churn_features, FRAUD.name: self.fraud_features}


def build_instruments(settings: Settings) -> Instruments:
    """New metrics, which also report the monitoring's latest figures, and an access log."""
    metrics = Metrics()
    # The monitoring flow's latest figures (drift, decisions) on this API's /metrics, so
    # the one scrape Prometheus makes carries them; the collector only reads small files.
    metrics.registry.register(MonitoringCollector(settings.monitoring_dir))
    return Instruments(metrics=metrics, access=AccessLog(flush_s=settings.access_log_flush_s))


def build_collaborators(settings: Settings, given: Given, metrics: Metrics) -> Collaborators:
    """The given collaborators, and the others built from `settings`, wired together.

    The feature store is built (not yet connected) only when a feature client is missing.
    """
    given_holders = {CHURN.name: given.churn_model_holder, FRAUD.name: given.fraud_model_holder}
    models = {
        study.name: given_holders[study.name] or ModelHolder(study.model_name(settings))
        for study in CASE_STUDIES.values()
    }
    challengers = _challenger_arms(settings, models)
    churn_features, fraud_features = given.churn_features_client, given.fraud_features_client
    store = None
    if churn_features is None or fraud_features is None:
        from features.store import feature_store

        store = feature_store(settings)
        churn_features = churn_features or OnlineFeatures(store, churn_model.name, ENTITY_KEY)
        fraud_features = fraud_features or FraudOnlineFeatures(store)
    log = given.prediction_log or build_prediction_log(settings)
    return Collaborators(
        models=models,
        challengers=challengers,
        churn_features=churn_features,
        fraud_features=fraud_features,
        store=store,
        log=log,
        churn_predictor=ChurnPredictor(
            models[CHURN.name], churn_features, metrics, log, challengers[CHURN.name]
        ),
        fraud_predictor=FraudPredictor(
            models[FRAUD.name], fraud_features, metrics, log, challengers[FRAUD.name]
        ),
    )


def build_prediction_log(settings: Settings) -> PredictionLog:
    """The prediction log of these settings (not started)."""
    return PredictionLog(
        settings.prediction_log_uri,
        settings.prediction_spool_dir,
        max_spool_bytes=int(settings.prediction_log_spool_max_mb * 1024 * 1024),
        flush_s=settings.prediction_log_flush_s,
        fsync=settings.prediction_log_fsync,
    )


def _challenger_arms(
    settings: Settings, models: Mapping[CaseStudyName, ModelHolder]
) -> dict[CaseStudyName, ChallengerArm | None]:
    """Online experiments (mode not off): a second holder per served model, on `challenger`."""
    arms: dict[CaseStudyName, ChallengerArm | None] = dict.fromkeys(models)
    if settings.challenger_mode == "off":
        return arms
    for name, holder in models.items():
        if name in settings.served_models:
            challenger = ModelHolder(holder.name, alias=CHALLENGER)
            arms[name] = ChallengerArm(challenger, settings.challenger_mode, settings.canary_share)
    return arms
