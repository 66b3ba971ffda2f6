"""Dependency aliases: route functions ask for collaborators by type, the app state holds them.

The getters are `async def` on purpose: FastAPI runs a plain `def` dependency in its
thread pool, and each trip there cost about 0.3 ms a request on this machine, for a
function that only reads an attribute. The scoring routes take none: they are
`serving.json_route.JsonRoute`s, which skip FastAPI's dependency graph.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from serving.errors import Unauthorized
from serving.fraud_features import FraudOnlineFeatures
from serving.model_holder import ModelHolder
from serving.online_features import OnlineFeatures


async def get_churn_model(request: Request) -> ModelHolder:
    return request.app.state.churn_model  # type: ignore[no-any-return]


async def get_churn_features(request: Request) -> OnlineFeatures:
    return request.app.state.churn_features  # type: ignore[no-any-return]


async def get_fraud_model(request: Request) -> ModelHolder:
    return request.app.state.fraud_model  # type: ignore[no-any-return]


async def get_fraud_features(request: Request) -> FraudOnlineFeatures:
    return request.app.state.fraud_features  # type: ignore[no-any-return]


_bearer = HTTPBearer(auto_error=False, description="The admin token (MLOPS_ADMIN_TOKEN).")


def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    expected = request.app.state.settings.admin_token.get_secret_value().encode()
    given = credentials.credentials.encode() if credentials is not None else b""
    # Constant time: the comparison must not tell how much of a guess was right.
    if not hmac.compare_digest(given, expected):
        raise Unauthorized("this endpoint needs the admin bearer token")


ChurnModelDep = Annotated[ModelHolder, Depends(get_churn_model)]
ChurnFeaturesDep = Annotated[OnlineFeatures, Depends(get_churn_features)]
FraudModelDep = Annotated[ModelHolder, Depends(get_fraud_model)]
FraudFeaturesDep = Annotated[FraudOnlineFeatures, Depends(get_fraud_features)]
AdminDep = Depends(require_admin)
