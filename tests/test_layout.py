"""The layout as a whole: the import layers hold and name every package, the architecture
page draws them as declared, and importing any module has no effects."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

from tests import layout

ROOT = layout.ROOT
# The console script `make lint` and CI run, from the environment running the tests.
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
# Top-level folders holding Python that is not a package of the platform.
NOT_PACKAGES = {"tests"}


def packages_with_code() -> set[str]:
    """Top-level folders of the repository that hold Python modules, but for the tests."""
    return {
        folder.name
        for folder in ROOT.iterdir()
        if folder.is_dir()
        and not folder.name.startswith(".")
        and folder.name not in NOT_PACKAGES
        and any(folder.glob("*.py"))
    }


def test_the_import_contracts_are_kept() -> None:
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_package_with_code_is_a_root_package_in_a_layer_and_type_checked() -> None:
    packages = packages_with_code()
    config = layout.import_linter_config()
    layered = [name for layer in layout.layers(config) for name in layer]
    type_checked = tomllib.loads(layout.PYPROJECT.read_text())["tool"]["mypy"]["packages"]

    for where, listed in (
        ("[tool.importlinter] root_packages", config["root_packages"]),
        ("the layers contract", layered),
        ("[tool.mypy] packages", type_checked),
    ):
        missing = sorted(packages - set(listed))
        assert not missing, f"{where} leaves out {missing}"
    assert sorted(layered) == sorted(config["root_packages"]), "each root package, one layer"


def test_the_architecture_page_draws_the_declared_layers() -> None:
    page = layout.ARCHITECTURE.read_text(encoding="utf-8")
    assert layout.current_block(page) == layout.block(), "run `make docs-layers`"


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
        for package in layout.import_linter_config()["root_packages"]
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
