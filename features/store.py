"""The Feast feature store, configured from settings: embedded by default, Redis in the stack.

The definitions live in `features.feature_repo`; this module builds the `RepoConfig`
(no feature_store.yaml needed; one is written beside the offline data for the Feast
CLI), applies the definitions, writes offline data, materializes the online store and
builds point-in-time training sets.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from feast import FeatureStore, RepoConfig

from features.feature_repo import churn as churn_repo
from mlops.settings import Settings

PROJECT = "mlops"
ENTITY_TIMESTAMP = "event_timestamp"


def repo_config(settings: Settings) -> RepoConfig:
    return RepoConfig(repo_path=settings.features_dir, **_config_fields(settings))


def _config_fields(settings: Settings) -> dict[str, Any]:
    """The feature_store.yaml content, under the keys Feast's YAML uses."""
    online: dict[str, object]
    if settings.online_store == "redis":
        online = {"type": "redis", "connection_string": _with_timeouts(settings)}
    else:
        online = {"type": "sqlite", "path": str(settings.feast_dir / "online.db")}
    return {
        "project": PROJECT,
        "provider": "local",
        "registry": {
            "registry_type": "file",
            "path": str(settings.feast_dir / "registry.db"),
            "cache_ttl_seconds": 60,
        },
        "online_store": online,
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
    }


def _with_timeouts(settings: Settings) -> str:
    """Every Redis call gets a timeout, so a dead online store fails fast instead of hanging."""
    url = settings.redis_url
    for option in ("socket_timeout", "socket_connect_timeout"):
        if f"{option}=" not in url:
            url += f",{option}={settings.feature_timeout_s}"
    return url


def feature_store(settings: Settings) -> FeatureStore:
    return FeatureStore(config=repo_config(settings))


def apply_churn_definitions(store: FeatureStore, settings: Settings) -> None:
    """Register the churn entity, view and service; write feature_store.yaml for the CLI."""
    store.apply(
        [
            churn_repo.customer,
            churn_repo.churn_customer_source,
            churn_repo.churn_customer_features,
            churn_repo.churn_model,
        ]
    )
    # Lets users inspect the store with `feast -c $MLOPS_HOME/features feature-views list`.
    # (RepoConfig.write_to_path writes field names Feast cannot read back, so not that.)
    config = settings.features_dir / "feature_store.yaml"
    config.write_text(yaml.safe_dump(_config_fields(settings), sort_keys=False))


def write_churn_offline(features: pd.DataFrame, settings: Settings) -> Path:
    """Write the offline churn features (customer_id, event_timestamp, features) as parquet."""
    path = settings.features_dir / churn_repo.CHURN_FEATURES_FILE
    tmp = path.with_suffix(".tmp.parquet")
    features.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def materialize(store: FeatureStore, start: datetime, end: datetime) -> None:
    """Load the online store with the latest values per entity in [start, end]."""
    store.materialize(
        start_date=start,
        end_date=end,
        feature_views=[churn_repo.churn_customer_features.name],
    )


def churn_training_frame(store: FeatureStore, entities: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time join: for each (customer_id, event_timestamp) the features known then."""
    service = store.get_feature_service(churn_repo.churn_model.name)
    job = store.get_historical_features(entity_df=entities, features=service)
    return job.to_df()
