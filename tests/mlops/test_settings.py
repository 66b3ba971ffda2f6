"""Settings: one typed object read from the environment, that refuses what it cannot use.

That importing any module has no effects is a property of the whole layout:
tests/test_layout.py checks it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mlops.settings import Settings


def test_defaults_put_everything_under_home(isolated_env: Path) -> None:
    settings = Settings()
    assert settings.home == isolated_env
    assert settings.tracking_uri == f"sqlite:///{isolated_env / 'mlflow.db'}"
    for folder in (
        settings.raw_dir,
        settings.features_dir,
        settings.feast_dir,
        settings.models_dir,
    ):
        assert folder.is_relative_to(isolated_env)
    assert not isolated_env.exists(), "reading settings must not create folders"
    settings.prepare()
    assert settings.features_dir.is_dir()


def test_tools_own_variables_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert Settings().tracking_uri == "http://mlflow:5000"


def test_a_mistyped_variable_is_an_error_that_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_HOEM", "/tmp/x")
    with pytest.raises(ValidationError, match="MLOPS_HOEM"):
        Settings()


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_ONLINE_STORE", "cassandra")
    with pytest.raises(ValidationError, match="online_store"):
        Settings()


def test_the_default_admin_token_is_refused_off_the_local_profile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().admin_token.get_secret_value()  # local: the default is fine
    monkeypatch.setenv("MLOPS_PROFILE", "stack")
    with pytest.raises(ValidationError, match="MLOPS_ADMIN_TOKEN is the default"):
        Settings()
    monkeypatch.setenv("MLOPS_ADMIN_TOKEN", "s3cret-of-our-own")
    settings = Settings()
    assert "s3cret" not in repr(settings)
