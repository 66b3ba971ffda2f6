"""`JsonRoute`: FastAPI's route, with a lean request handler for the hot JSON endpoints.

FastAPI's generic handler serves every kind of endpoint (forms, files, streams, any
dependency graph), and pays for that on each request: it parses the content type with
`email.message`, decodes the JSON with the standard library, walks the dependency graph,
validates the decoded body, then validates the returned model again before serializing
it. On this machine that was about 60 µs of the churn route's ~350 µs in the app.

A route of this class keeps everything FastAPI derives from the endpoint's signature (the
OpenAPI schema, the declared response model, the 422 shape of a bad body), and handles a
request in four steps: read the body (refused with a 415 unless sent as JSON), parse and
validate it with the body model's `model_validate_json` (pydantic-core does both in one
pass), await the endpoint with the body and the `Request`, and serialize the returned
model with its own serializer. It takes
only endpoints of that shape, `async def f(body: Model, request: Request) -> Response`,
and refuses anything else when the app is built, so no feature FastAPI would have given
the endpoint is silently lost.

Use it with `APIRouter(route_class=JsonRoute)` or `@app.post(..., route_class=...)`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from serving.errors import UnsupportedMediaType

JSON_MEDIA_TYPE = "application/json"
NOT_JSON = f"send the body as {JSON_MEDIA_TYPE} (the content-type header)"


class JsonRoute(APIRoute):
    """An APIRoute for `async def f(body: Model, request: Request) -> ResponseModel`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The lean handler; TypeError when the endpoint is not of the shape above."""
        body_model, response_model = self._models()
        endpoint: Callable[[BaseModel, Request], Awaitable[BaseModel]] = self.endpoint
        parse = body_model.model_validate_json
        dump = response_model.__pydantic_serializer__.to_json
        status = self.status_code or 200
        accepts = self.accepts

        async def handle(request: Request) -> Response:
            if not accepts(request):
                raise UnsupportedMediaType(NOT_JSON)
            body = await request.body()
            try:
                parsed = parse(body)
            except ValidationError as error:
                raise RequestValidationError(
                    [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
                ) from None
            result = await endpoint(parsed, request)
            return Response(dump(result), status_code=status, media_type=JSON_MEDIA_TYPE)

        return handle

    @staticmethod
    def accepts(request: Request) -> bool:
        """Whether the request's body may be read as JSON: it says it is JSON."""
        return is_json(request)

    def _models(self) -> tuple[type[BaseModel], type[BaseModel]]:
        """The body and response models; the endpoint's shape is checked here, at build."""
        dependant = self.dependant
        where = f"{self.methods} {self.path} ({self.endpoint.__name__})"
        if not inspect.iscoroutinefunction(self.endpoint):
            raise TypeError(f"{where}: a JsonRoute endpoint must be `async def`")
        parameters = list(inspect.signature(self.endpoint).parameters)
        shape_ok = (
            len(dependant.body_params) == 1
            and not (dependant.path_params or dependant.query_params)
            and not (dependant.header_params or dependant.cookie_params)
            and not dependant.dependencies
            and dependant.request_param_name is not None
            and parameters == [dependant.body_params[0].name, dependant.request_param_name]
        )
        body = dependant.body_params[0].field_info.annotation if dependant.body_params else None
        if not shape_ok or not _is_model(body):
            raise TypeError(f"{where}: a JsonRoute endpoint is f(body: Model, request: Request)")
        if not _is_model(self.response_model):
            raise TypeError(f"{where}: a JsonRoute declares a pydantic response model")
        return cast(type[BaseModel], body), cast(type[BaseModel], self.response_model)


def _is_model(annotation: Any) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, BaseModel)


def is_json(request: Request) -> bool:
    """The request says its body is JSON: `application/json` or `application/<type>+json`."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    return media_type == JSON_MEDIA_TYPE or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )
