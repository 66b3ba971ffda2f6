"""`mlops promote` and `mlops rollback`: move a case study's champion alias by hand."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import CaseStudy, fail, model_name, prepare

if TYPE_CHECKING:
    from mlflow import MlflowClient


def _client_and_name(model: CaseStudy) -> tuple[MlflowClient, str]:
    from mlflow import MlflowClient

    settings = prepare()
    return MlflowClient(tracking_uri=settings.tracking_uri), model_name(settings, model)


def promote(
    model: Annotated[CaseStudy, typer.Argument(help="Which case study's model.")],
    version: Annotated[str, typer.Option(help="The registered version to make champion.")],
    reason: Annotated[str, typer.Option(help="Why, kept on the version.")] = "manual promotion",
) -> None:
    """Move the champion alias to a version; the API follows within MLOPS_MODEL_REFRESH_S."""
    from mlops.registry import RegistryError
    from mlops.registry import promote as promote_version

    client, name = _client_and_name(model)
    try:
        promote_version(client, name, version, reason=reason)
    except RegistryError as error:
        fail(str(error))
    typer.echo(f"{name}@champion -> v{version}")


def rollback(
    model: Annotated[CaseStudy, typer.Argument(help="Which case study's model.")],
) -> None:
    """Give the champion alias back to the version that held it before."""
    from mlops.registry import RegistryError
    from mlops.registry import rollback as rollback_champion

    client, name = _client_and_name(model)
    try:
        version = rollback_champion(client, name)
    except RegistryError as error:
        fail(str(error))
    typer.echo(f"{name}@champion -> v{version}")
