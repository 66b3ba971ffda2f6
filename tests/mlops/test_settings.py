"""Settings and the import contract: one typed settings object; importing has no effects."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from mlops.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# Every top-level package, as the import layers declare them.
PACKAGES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
    "root_packages"
]


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


def _python(code: str, home: Path) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=home.parent,
        env={"MLOPS_HOME": str(home), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_importing_every_module_creates_nothing_and_configures_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    modules = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py")
    )
    code = f"""
import importlib, json, os
for name in {modules!r}:
    importlib.import_module(name)
print(json.dumps({{
    "home_exists": os.path.exists({str(home)!r}),
    "cwd_entries": sorted(os.listdir(".")),
    "mlflow_uri": os.environ.get("MLFLOW_TRACKING_URI"),
}}))
"""
    found = _python(code, home)
    assert found == {"home_exists": False, "cwd_entries": [], "mlflow_uri": None}


def test_the_serving_app_loads_no_training_libraries(tmp_path: Path) -> None:
    code = """
import json, sys
import serving.app
heavy = [m for m in ("sklearn", "xgboost", "skl2onnx", "onnxmltools", "prefect", "evidently")
         if m in sys.modules]
print(json.dumps({"heavy": heavy}))
"""
    assert _python(code, tmp_path / "home") == {"heavy": []}


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
