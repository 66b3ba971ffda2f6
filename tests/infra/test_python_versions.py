"""The supported Pythons, said once in pyproject.toml's requires-python and agreed on by
everything else that names them: the classifiers, the lock, the tools' target version,
the CI matrix and the versions .ci/run tries beside the default one."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Minor versions far enough on either side of any range this project would declare.
CANDIDATES = [f"3.{minor}" for minor in range(8, 20)]


def _requires_python() -> SpecifierSet:
    return SpecifierSet(PYPROJECT["project"]["requires-python"])


def _supported() -> list[str]:
    """Every 3.X that requires-python admits (as X.Y.0 and its later patch releases)."""
    spec = _requires_python()
    return [v for v in CANDIDATES if Version(f"{v}.0") in spec and Version(f"{v}.99") in spec]


def _classified() -> list[str]:
    prefix = "Programming Language :: Python :: "
    found = [c.removeprefix(prefix) for c in PYPROJECT["project"]["classifiers"]]
    return [v for v in found if re.fullmatch(r"3\.\d+", v)]


def _workflow() -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    return loaded


def test_requires_python_is_a_closed_range_of_current_pythons() -> None:
    supported = _supported()
    assert supported and supported[0] == "3.11", supported
    # An upper bound: a Python the dependencies publish no wheels for fails at `uv sync`
    # with a clear message (or uv fetches a supported one) instead of building from source.
    assert not any(Version(f"{v}.0") in _requires_python() for v in CANDIDATES[-3:])


def test_the_classifiers_name_every_supported_python_and_no_other() -> None:
    assert _classified() == _supported()
    assert "Programming Language :: Python :: 3 :: Only" in PYPROJECT["project"]["classifiers"]


def test_the_lock_was_made_for_the_same_range() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    assert SpecifierSet(lock["requires-python"]) == _requires_python(), (
        "uv.lock is stale: run `uv lock`"
    )


def test_the_tools_check_the_code_against_the_oldest_supported_python() -> None:
    oldest = _supported()[0]
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py" + oldest.replace(".", "")
    assert PYPROJECT["tool"]["mypy"]["python_version"] == oldest


def test_the_ci_matrix_runs_every_supported_python() -> None:
    jobs = _workflow()["jobs"]
    matrices = [
        job["strategy"]["matrix"]["python"]
        for job in jobs.values()
        if "python" in job.get("strategy", {}).get("matrix", {})
    ]
    assert matrices == [_supported()], matrices
    job = next(job for job in jobs.values() if "strategy" in job)
    run = [step["run"] for step in job["steps"] if "run" in step]
    assert run == ["make test-fast demo-small"] and job["env"]["PY"] == "${{ matrix.python }}"


def test_every_python_the_workflow_sets_up_is_supported() -> None:
    named = [
        step["with"]["python-version"]
        for job in _workflow()["jobs"].values()
        for step in job["steps"]
        if str(step.get("uses", "")).startswith("actions/setup-python")
    ]
    fixed = [v for v in named if not v.startswith("${{")]
    assert fixed and len(fixed) < len(named), named  # fixed jobs, and the matrix one
    outside = [v for v in fixed if Version(f"{v}.0") not in _requires_python()]
    assert not outside, outside


def test_ci_run_tries_every_supported_python_beside_the_default() -> None:
    text = (ROOT / ".ci/run").read_text()
    loop = re.search(r"^for version in ([\d. ]+); do$", text, re.M)
    assert loop, ".ci/run no longer loops over the other Pythons"
    # The default Python, the oldest, runs the whole suite; each other one its fast part.
    assert [_supported()[0], *loop.group(1).split()] == _supported()
