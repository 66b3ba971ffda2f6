"""The project image's Dockerfile, read against the code: pinned, non-root, built from the
lock without dev tools, and holding every executable the stack's services run."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from mlops.settings import Settings
from tests.helpers.cli_commands import parse_mlops
from tests.infra.image import IMAGE_UID

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "infra" / "Dockerfile"
# What the compose file, the native stack and the Kubernetes manifests run in the image.
SERVICE_EXECUTABLES = ("mlops", "mlflow", "prefect", "evidently", "feast")


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


@pytest.fixture(scope="module")
def stages() -> dict[str, list[tuple[str, str]]]:
    """Instructions per build stage, by stage name; '' holds the global ARGs."""
    named: dict[str, list[tuple[str, str]]] = {"": []}
    current = ""
    for keyword, rest in _instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            current = rest.split()[-1] if " AS " in rest.upper() else rest
            named[current] = []
        named[current].append((keyword, rest))
    return named


def _args(instructions: list[tuple[str, str]]) -> dict[str, str]:
    return dict(
        rest.split("=", 1) for keyword, rest in instructions if keyword == "ARG" and "=" in rest
    )


def test_the_image_has_a_builder_and_a_runtime_stage_on_one_pinned_base(
    stages: dict[str, list[tuple[str, str]]],
) -> None:
    assert list(stages) == ["", "builder", "runtime"]
    base = _args(stages[""])["PYTHON_IMAGE"]
    python = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minor = re.search(r">=(3\.\d+)", python)
    assert minor is not None
    # An exact patch release on a named Debian release: the build is the same next month.
    assert re.fullmatch(rf"python:{re.escape(minor.group(1))}\.\d+-slim-\w+", base), base
    for name in ("builder", "runtime"):
        assert stages[name][0] == ("FROM", f"${{PYTHON_IMAGE}} AS {name}")


def test_the_builder_installs_a_pinned_uv_and_syncs_the_lock_without_dev_tools(
    stages: dict[str, list[tuple[str, str]]],
) -> None:
    builder = stages["builder"]
    version = _args(builder)["UV_VERSION"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    runs = [rest for keyword, rest in builder if keyword == "RUN"]
    assert any('"uv==${UV_VERSION}"' in run for run in runs)
    syncs = [run for run in runs if "uv sync" in run]
    assert syncs and all("--frozen" in run and "--no-dev" in run for run in syncs)
    # The last sync installs the project itself, after its packages were copied.
    assert "--no-install-project" not in syncs[-1]


def test_every_package_of_the_distribution_is_copied_into_the_image(
    stages: dict[str, list[tuple[str, str]]],
) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = set(pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])
    copied = {
        rest.split()[0]
        for keyword, rest in stages["builder"]
        if keyword == "COPY" and not rest.startswith("--")
    }
    assert packages <= copied, f"not copied into the image: {sorted(packages - copied)}"
    assert {"pyproject.toml", "README.md"} <= copied | {
        w for k, r in stages["builder"] if k == "COPY" for w in r.split()
    }


def test_the_runtime_runs_mlops_serve_as_a_non_root_user(
    stages: dict[str, list[tuple[str, str]]],
) -> None:
    runtime = stages["runtime"]
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(f"--uid {IMAGE_UID}" in rest for keyword, rest in runtime if keyword == "RUN")
    env = " ".join(rest for keyword, rest in runtime if keyword == "ENV")
    assert "PATH=/app/.venv/bin:$PATH" in env and "MLOPS_HOME=/data" in env
    known = {f"MLOPS_{name.upper()}" for name in Settings.model_fields}
    assert set(re.findall(r"\bMLOPS_\w+", env)) <= known
    assert ("CMD", '["mlops", "serve"]') in runtime
    parse_mlops(["serve"])
    # Build-time tooling stays in the builder.
    assert not any("pip install" in rest for keyword, rest in runtime if keyword == "RUN")


def _runtime_closure(lock: dict[str, Any]) -> set[str]:
    """Packages `uv sync --no-dev` installs: the project's dependencies, extras included."""
    packages = {package["name"]: package for package in lock["package"]}
    wanted: list[tuple[str, tuple[str, ...]]] = [("mlops-platform", ())]
    seen: set[tuple[str, tuple[str, ...]]] = set()
    while wanted:
        name, extras = wanted.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        package = packages[name]
        # Markers are ignored: a package needed on some platform counts as installed.
        dependencies = list(package.get("dependencies", []))
        for extra in extras:
            dependencies += package.get("optional-dependencies", {}).get(extra, [])
        wanted += [(d["name"], tuple(d.get("extra", ()))) for d in dependencies]
    return {name for name, _ in seen}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_service_executable_comes_from_a_runtime_dependency() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    runtime = {_normalise(name) for name in _runtime_closure(lock)}
    scripts = {ep.name: ep for ep in metadata.entry_points(group="console_scripts")}
    for executable in SERVICE_EXECUTABLES:
        entry = scripts.get(executable)
        assert entry is not None and entry.dist is not None, f"no console script {executable}"
        assert _normalise(entry.dist.name) in runtime, (
            f"{executable} comes from {entry.dist.name}, which `uv sync --no-dev` leaves out"
        )
    # The check can fail: the dev tools are not in the image.
    assert "pytest" not in runtime and "ruff" not in runtime


def test_the_build_context_leaves_out_local_state_and_secrets() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "var", "data", ".env", ".tools"} <= ignored
