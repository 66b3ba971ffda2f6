"""Moving the registry's aliases: promotion, rollback, and the history that makes rollback possible.

MLflow aliases point at one version and forget where they pointed before, so every
promotion appends the version to the registered model's `champion_history` tag.
Rolling back moves `champion` to the version that held it before the current one.
Serving follows the alias (see `serving.model_holder.ModelHolder.refresh`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlops.names import CHALLENGER, CHAMPION

HISTORY_TAG = "champion_history"


class RegistryError(ValueError):
    """A promotion or rollback that cannot be done (unknown version, no earlier champion)."""


def champion_version(client: MlflowClient, name: str) -> str | None:
    """The version `champion` points at, or None when there is none (or no such model)."""
    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        # MLflow's basic-auth app (the stack's) answers 403, not 404, for an alias of a
        # model that does not exist; a model that does exist keeps its 403.
        if error.error_code == "PERMISSION_DENIED" and not _registered(client, name):
            return None
        raise


def _registered(client: MlflowClient, name: str) -> bool:
    quoted = name.replace("'", "\\'")
    return bool(client.search_registered_models(filter_string=f"name = '{quoted}'"))


def champion_history(client: MlflowClient, name: str) -> list[str]:
    """Versions that held `champion`, oldest first (the last is the current one)."""
    tags = client.get_registered_model(name).tags
    return [v for v in tags.get(HISTORY_TAG, "").split(",") if v]


def promote(client: MlflowClient, name: str, version: str, *, reason: str) -> None:
    """Make `version` the champion and remember it, with when and why."""
    try:
        client.get_model_version(name, version)
    except MlflowException as error:
        raise RegistryError(f"{name} has no version {version}") from error
    history = champion_history(client, name)
    client.set_registered_model_alias(name, CHAMPION, version)
    client.set_registered_model_tag(name, HISTORY_TAG, ",".join([*history, version]))
    client.set_model_version_tag(name, version, "promoted_at", datetime.now(UTC).isoformat())
    client.set_model_version_tag(name, version, "promotion_reason", reason)


def mark_challenger(client: MlflowClient, name: str, version: str) -> None:
    client.set_registered_model_alias(name, CHALLENGER, version)


def rollback(client: MlflowClient, name: str, *, reason: str = "rollback") -> str:
    """Give `champion` back to the version that held it before; return that version."""
    history = champion_history(client, name)
    current = client.get_model_version_by_alias(name, CHAMPION).version if history else None
    # Drop the current champion (and any repeats of it) from the end of the history.
    while history and history[-1] == str(current):
        history.pop()
    if not history:
        raise RegistryError(f"{name} has no earlier champion to roll back to")
    previous = history[-1]
    client.set_registered_model_alias(name, CHAMPION, previous)
    client.set_registered_model_tag(name, HISTORY_TAG, ",".join(history))
    client.set_model_version_tag(name, previous, "promotion_reason", reason)
    return previous
