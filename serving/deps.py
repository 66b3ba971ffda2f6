"""Dependency aliases: route functions ask for collaborators by type, the app state holds them.

The lifespan publishes the `Collaborators` of each run on the app state; `create_app`
puts the settings and the `Instruments` there when it builds the app. The getters are
`async def` on purpose: FastAPI runs a plain `def` dependency in its thread pool, and
each trip there cost about 0.3 ms a request on this machine, for a function that only
reads an attribute. The scoring and batch routes take none: they are
`serving.json_route.JsonRoute`s, which skip FastAPI's dependency graph.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mlops.case_studies import CaseStudyName
from mlops.settings import Settings
from serving.collaborators import Collaborators
from serving.errors import Unauthorized
from serving.metrics import Metrics
from serving.model_holder import ModelHolder


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.instruments.metrics  # type: ignore[no-any-return]


async def get_collaborators(request: Request) -> Collaborators:
    return request.app.state.collaborators  # type: ignore[no-any-return]


async def get_models(request: Request) -> Mapping[CaseStudyName, ModelHolder]:
    return request.app.state.collaborators.models  # type: ignore[no-any-return]


_bearer = HTTPBearer(auto_error=False, description="The admin token (MLOPS_ADMIN_TOKEN).")


def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Let the request through only with the admin bearer token; `Unauthorized` (401) if not."""
    expected = request.app.state.settings.admin_token.get_secret_value().encode()
    given = credentials.credentials.encode() if credentials is not None else b""
    # An empty token (allowed on profile local only) turns the admin endpoints off: no
    # header would otherwise equal it. Constant time: the comparison must not tell how
    # much of a guess was right.
    if not expected.strip() or not hmac.compare_digest(given, expected):
        raise Unauthorized("this endpoint needs the admin bearer token")


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
CollaboratorsDep = Annotated[Collaborators, Depends(get_collaborators)]
ModelsDep = Annotated[Mapping[CaseStudyName, ModelHolder], Depends(get_models)]
AdminDep = Depends(require_admin)
