"""Dependency aliases: route functions ask for collaborators by type, the app state holds them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from serving.fraud_features import FraudOnlineFeatures
from serving.model_holder import ModelHolder
from serving.online_features import OnlineFeatures


def get_churn_model(request: Request) -> ModelHolder:
    return request.app.state.churn_model  # type: ignore[no-any-return]


def get_churn_features(request: Request) -> OnlineFeatures:
    return request.app.state.churn_features  # type: ignore[no-any-return]


def get_fraud_model(request: Request) -> ModelHolder:
    return request.app.state.fraud_model  # type: ignore[no-any-return]


def get_fraud_features(request: Request) -> FraudOnlineFeatures:
    return request.app.state.fraud_features  # type: ignore[no-any-return]


ChurnModelDep = Annotated[ModelHolder, Depends(get_churn_model)]
ChurnFeaturesDep = Annotated[OnlineFeatures, Depends(get_churn_features)]
FraudModelDep = Annotated[ModelHolder, Depends(get_fraud_model)]
FraudFeaturesDep = Annotated[FraudOnlineFeatures, Depends(get_fraud_features)]
