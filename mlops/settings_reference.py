"""The settings described from the `Settings` class itself: docs/settings.md and `mlops config`.

Each field gives one row: its variable, type (with its bounds), default and description,
in a group of related settings. The Markdown reference is built from the class alone, so
it holds every field by construction and does not depend on the environment;
tests/mlops/test_settings_reference.py fails when docs/settings.md is not what
`markdown()` gives. `current()` adds what a running command sees: each value and where it
came from, secrets masked.
"""

from __future__ import annotations

import os
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from mlops.settings import Settings, environment_variable

# Groups, in the order the reference shows them: a field belongs to the first group one
# of whose names is its name, or a prefix of it (a name ending in "_").
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Run state", ("home", "profile", "seed")),
    (
        "Stores and tracking",
        (
            "mlflow_tracking_uri",
            "online_store",
            "redis_url",
            "feast_registry_url",
            "prediction_log_url",
        ),
    ),
    ("Models and training", ("churn_model_name", "fraud_", "parity_tolerance")),
    (
        "Serving",
        (
            "served_models",
            "api_",
            "model_refresh_s",
            "feature_timeout_s",
            "prediction_log_",
            "access_log_",
            "max_",
            "body_read_timeout_s",
            "header_read_timeout_s",
            "admin_token",
            "admin_port",
            "challenger_mode",
            "canary_share",
        ),
    ),
    ("The payments stream (`mlops stream fraud`)", ("stream_",)),
    ("Monitoring and continuous training", ("monitor_", "label_source", "retrain_", "promotion_")),
    ("Scaling out on Dask", ("task_runner", "dask_")),
    ("The native stack (`mlops stack`)", ("stack_",)),
    ("Links of the walkthrough pages", ("mlflow_ui_url", "evidently_ui_url", "grafana_url")),
)
OTHER = "Other settings"

MASK = "********"
# user:password@ in a URL: the password is masked wherever a value is shown.
_URL_PASSWORD = re.compile(r"(://[^/:@\s]+:)[^@/\s]+@")

# Fields whose unset value stands for a value derived from the others.
_DERIVED: Mapping[str, str] = {
    "mlflow_tracking_uri": "tracking_uri",
    "prediction_log_url": "prediction_log_uri",
    "prediction_log_spool_dir": "prediction_spool_dir",
}


@dataclass(frozen=True)
class Setting:
    """One field of `Settings`, described."""

    name: str
    variable: str
    type: str
    default: str | None  # None: unset
    description: str
    group: str
    secret: bool


@dataclass(frozen=True)
class CurrentSetting:
    """A setting as a command sees it: its value (secrets masked) and where it came from."""

    setting: Setting
    value: str
    source: str  # "default" or "environment"


def group_of(name: str) -> str:
    for title, names in GROUPS:
        if any(name == n or (n.endswith("_") and name.startswith(n)) for n in names):
            return title
    return OTHER


def describe_type(field: FieldInfo) -> str:
    """`integer ≥ 1`, `one of local, stack`, `number > 0, optional` ..."""
    annotation, optional = field.annotation, False
    if get_origin(annotation) in (Union, types.UnionType) and type(None) in get_args(annotation):
        (annotation,) = (a for a in get_args(annotation) if a is not type(None))
        optional = True
    text = _type_name(annotation)
    bounds = []
    for item in field.metadata:
        for attribute, symbol in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            value = getattr(item, attribute, None)
            if isinstance(value, int | float):
                bounds.append(f"{symbol} {value:g}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            bounds.append(f"matching `{pattern}`")
    text = " ".join([text, ", ".join(bounds)]) if bounds else text
    return f"{text}, optional" if optional else text


def _type_name(annotation: Any) -> str:
    origin, arguments = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in arguments)
    if origin is list:
        (inner,) = arguments
        return "comma-separated list " + _type_name(inner).replace("one of", "of")
    names = {Path: "path", str: "string", int: "integer", float: "number", bool: "boolean"}
    if annotation is SecretStr:
        return "secret string"
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def show(value: Any) -> str:
    """A value as the reference and `mlops config` print it (URL passwords masked)."""
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return _URL_PASSWORD.sub(rf"\g<1>{MASK}@", str(value))


def settings() -> list[Setting]:
    """Every field of `Settings`, in declaration order."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        rows.append(
            Setting(
                name=name,
                variable=environment_variable(name),
                type=describe_type(field),
                default=None if default is None else show(default),
                description=field.description or "",
                group=group_of(name),
                secret=field.annotation is SecretStr,
            )
        )
    return rows


def grouped(rows: list[Any], key: Any) -> dict[str, list[Any]]:
    """Rows by group, the groups in the order of GROUPS (OTHER last)."""
    order = [title for title, _ in GROUPS] + [OTHER]
    found: dict[str, list[Any]] = {title: [] for title in order}
    for row in rows:
        found[key(row).group].append(row)
    return {title: items for title, items in found.items() if items}


def current(values: Settings, environ: Mapping[str, str] | None = None) -> list[CurrentSetting]:
    """Each setting's value in `values` and its source (pydantic-settings reads variables
    whatever their case); an unset value that stands for a derived one shows both."""
    environ = os.environ if environ is None else environ
    present = {key.upper() for key in environ}
    rows = []
    for setting in settings():
        value = getattr(values, setting.name)
        shown = show(value)
        if value is None and setting.name in _DERIVED:
            shown = f"unset: {show(getattr(values, _DERIVED[setting.name]))}"
        source = "environment" if setting.variable.upper() in present else "default"
        rows.append(CurrentSetting(setting, shown, source))
    return rows


def _cell(text: str) -> str:
    """Text in a table cell: a pipe would end it, `<home>` be taken for a tag."""
    text = text.replace("|", "\\|").replace("<", "&lt;")
    return text.replace("\n", " ")


def markdown() -> str:
    """docs/settings.md: every setting by group, from the class alone (no environment)."""
    rows = settings()
    lines = [
        "# Settings",
        "",
        "<!-- Generated from mlops/settings.py by `make settings-doc`"
        " (`mlops config --markdown`); do not edit by hand. -->",
        "",
        f"The platform reads its {len(rows)} settings from the environment, once per command,"
        " into one typed object (`mlops.settings.Settings`). Each is an `MLOPS_*` variable,"
        " but for the tools' own variables, which keep their names (`MLFLOW_TRACKING_URI`;"
        " Prefect reads `PREFECT_API_URL` itself). An unknown `MLOPS_*` variable or a value"
        " that does not fit is an error naming the variable, before the command does"
        " anything. `mlops config` prints each setting's current value and whether it came"
        " from the environment or the default; secrets and URL passwords are masked.",
        "",
    ]
    for title, items in grouped(rows, key=lambda row: row).items():
        lines += [f"## {title}", "", "| variable | type | default | description |"]
        lines.append("|---|---|---|---|")
        for row in items:
            default = f"`{row.default}`" if row.default else "empty"
            if row.default is None or row.secret:
                default = "unset" if row.default is None else "*(a local default)*"
            lines.append(
                f"| `{row.variable}` | {_cell(row.type)} | {_cell(default)} "
                f"| {_cell(row.description)} |"
            )
        lines.append("")
    return "\n".join(lines)
