"""`mlops quality-bar`: fail when a registered model misses its quality bar (CI's model check).

The figures checked are the test metrics a registered version carries in its bundle
(`model_meta.json`, the same ones `GET /v1/<model>/model` reports), measured on the
held-out test window when the version was trained. Each bound is a floor (`--min
roc_auc=0.80`) or a ceiling (`--max brier=0.20`). Exit codes: 0 when every bound holds,
1 when one does not, 2 when the check cannot be made (no such model or version, a metric
the model does not have, a malformed bound).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import CaseStudy, fail, model_name, prepare

if TYPE_CHECKING:
    from mlops.settings import Settings


class QualityBarError(ValueError):
    """The bar cannot be checked: a malformed bound or a metric the model lacks."""


@dataclass(frozen=True)
class Bound:
    """One bound of the bar: `metric` at least (`floor`) or at most `limit`."""

    metric: str
    limit: float
    floor: bool  # True: the metric must be >= limit; False: <= limit

    @property
    def operator(self) -> str:
        return ">=" if self.floor else "<="

    def holds(self, value: float) -> bool:
        # A NaN metric (e.g. ROC-AUC of a one-class test set) never passes.
        if math.isnan(value):
            return False
        return value >= self.limit if self.floor else value <= self.limit


@dataclass(frozen=True)
class Check:
    """A bound and the model's value of its metric."""

    bound: Bound
    value: float

    @property
    def passed(self) -> bool:
        return self.bound.holds(self.value)

    def describe(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"{self.bound.metric} {self.value:.4f} "
            f"(required {self.bound.operator} {self.bound.limit:g}) {verdict}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.bound.metric,
            "operator": self.bound.operator,
            "limit": self.bound.limit,
            "value": self.value,
            "passed": self.passed,
        }


def parse_bound(text: str, *, floor: bool) -> Bound:
    """`METRIC=VALUE`, e.g. `roc_auc=0.8`."""
    metric, sep, limit = text.partition("=")
    try:
        if not sep or not metric.strip():
            raise ValueError
        value = float(limit)
    except ValueError:
        raise QualityBarError(f"bound {text!r} is not METRIC=NUMBER (e.g. roc_auc=0.8)") from None
    if math.isnan(value):
        raise QualityBarError(f"bound {text!r} is not a number")
    return Bound(metric.strip(), value, floor)


def check_bounds(metrics: Mapping[str, float], bounds: Sequence[Bound]) -> list[Check]:
    """One check per bound; a metric the model does not report is an error, not a pass."""
    missing = sorted({b.metric for b in bounds} - set(metrics))
    if missing:
        known = ", ".join(sorted(metrics))
        raise QualityBarError(
            f"the model has no test metric(s) {', '.join(missing)}; it has {known}"
        )
    return [Check(bound, float(metrics[bound.metric])) for bound in bounds]


def latest_version(client: Any, name: str) -> str:
    """The highest version number registered under `name` (the last one trained)."""
    versions = [int(v.version) for v in client.search_model_versions(f"name = '{name}'")]
    if not versions:
        raise LookupError(f"registered model '{name}' has no versions")
    return str(max(versions))


def quality_bar(
    model: Annotated[CaseStudy, typer.Argument(help="Which case study's model.")],
    minimum: Annotated[
        list[str] | None,
        typer.Option("--min", metavar="METRIC=VALUE", help="Floor on a test metric (repeatable)."),
    ] = None,
    maximum: Annotated[
        list[str] | None,
        typer.Option(
            "--max", metavar="METRIC=VALUE", help="Ceiling on a test metric (repeatable)."
        ),
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="Registered version to check (default: the latest).")
    ] = None,
    alias: Annotated[
        str | None, typer.Option(help="Check the version an alias points at instead.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with one JSON line: the checks.")
    ] = False,
) -> None:
    """Fail (exit 1) when a registered model's test metrics miss their bounds."""

    settings = prepare()
    try:
        bounds = _bounds(minimum, maximum, version, alias)
    except QualityBarError as error:
        fail(str(error))
    name = model_name(settings, model)
    try:
        checked_version, checks = _check_registered(settings, name, bounds, version, alias)
    except (LookupError, QualityBarError) as error:
        fail(str(error))
    _report(name, checked_version, checks, as_json)


def _bounds(
    minimum: list[str] | None, maximum: list[str] | None, version: str | None, alias: str | None
) -> list[Bound]:
    """The bounds of the command line; raises `QualityBarError` when they cannot be checked."""
    bounds = [parse_bound(t, floor=True) for t in minimum or []]
    bounds += [parse_bound(t, floor=False) for t in maximum or []]
    if not bounds:
        raise QualityBarError("give at least one --min or --max bound")
    if version is not None and alias is not None:
        raise QualityBarError("give --version or --alias, not both")
    return bounds


def _check_registered(
    settings: Settings, name: str, bounds: list[Bound], version: str | None, alias: str | None
) -> tuple[str, list[Check]]:
    """(the version checked, one check per bound) for the version or alias given, else the
    latest version. Raises `LookupError` when there is no such model or version."""
    from mlflow import MlflowClient

    from mlops.model_bundle import download_bundle

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    if alias is None and version is None:
        version = latest_version(client, name)
    bundle = download_bundle(
        settings.tracking_uri, name, settings.models_dir, alias=alias, version=version
    )
    return bundle.version, check_bounds(bundle.meta.test_metrics, bounds)


def _report(name: str, version: str, checks: list[Check], as_json: bool) -> None:
    """One line per check, the JSON line if asked; exit 1 when a bound is missed."""
    passed = all(check.passed for check in checks)
    for check in checks:
        typer.echo(f"{name} v{version}  {check.describe()}")
    if as_json:
        summary = {
            "model": name,
            "version": version,
            "passed": passed,
            "checks": [check.to_dict() for check in checks],
        }
        typer.echo(json.dumps(summary, sort_keys=True))
    if not passed:
        failed = ", ".join(c.bound.metric for c in checks if not c.passed)
        typer.secho(
            f"quality bar missed: {name} v{version} misses its bound on {failed}",
            fg="red",
            err=True,
        )
        raise typer.Exit(1)
