"""The provisioned Grafana dashboards as numbers: every panel's PromQL, run on Prometheus.

Grafana has no Debian package, so the native stack (`mlops stack up`) has no Grafana; its
Prometheus holds the same series, and `mlops stack panels` prints what each panel of
`infra/grafana/dashboards/*.json` would show now: the panel's title, each query's result
(one line per series), or "no data". The tests use the same reading of the dashboards
(`tests/helpers/dashboards.py`): a panel whose query returns nothing on a running stack is
a broken panel.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DASHBOARDS_DIR = Path(__file__).resolve().parents[1] / "infra" / "grafana" / "dashboards"
# What Grafana puts for its variables: every value of a multi-value variable ("All"), and
# $__rate_interval as four scrape intervals of the data source's timeInterval (15 s).
RATE_INTERVAL = "1m"


def dashboards() -> list[dict[str, Any]]:
    """Every provisioned dashboard, parsed."""
    return [json.loads(path.read_text()) for path in sorted(DASHBOARDS_DIR.glob("*.json"))]


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found += panel.get("panels", [])
    return found


def grafana_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every template variable."""
    found = [
        (f"{dashboard['uid']} / {panel['title']} / {target.get('refId', '')}", target["expr"])
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        query = variable["query"]["query"]
        values = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query)
        if values is None:
            raise ValueError(f"{dashboard['uid']} variable {variable['name']}: {query}")
        metric, label = values.groups()
        found.append((f"{dashboard['uid']} ${variable['name']}", f"max by ({label}) ({metric})"))
    return found


def instant_expr(expr: str) -> str:
    """A panel's PromQL as Grafana sends it with every variable at "All"."""
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    return re.sub(r'=~"\$\w+"', '=~".*"', expr)


@dataclass(frozen=True)
class PanelValue:
    """One query of one panel and what Prometheus answers for it now."""

    where: str
    """dashboard uid / panel title / query ref."""
    query: str
    """The PromQL run, as Grafana sends it with every variable at "All"."""
    series: list[tuple[dict[str, str], str]]
    """Each series' labels (less `__name__`) and its value; empty when there is no data."""


def panel_values(prometheus_url: str, timeout_s: float = 10.0) -> list[PanelValue]:
    """Every query of every provisioned dashboard, run at Prometheus's present."""
    found = []
    with httpx.Client(base_url=prometheus_url, timeout=timeout_s) as client:
        for dashboard in dashboards():
            for where, expr in grafana_queries(dashboard):
                query = instant_expr(expr)
                answer = client.get("/api/v1/query", params={"query": query})
                answer.raise_for_status()
                found.append(PanelValue(where, query, _series(answer.json()["data"])))
    return found


def _series(data: dict[str, Any]) -> list[tuple[dict[str, str], str]]:
    if data["resultType"] == "scalar":
        return [({}, str(data["result"][1]))]
    return [
        ({k: v for k, v in item["metric"].items() if k != "__name__"}, str(item["value"][1]))
        for item in data["result"]
    ]


def describe(series: list[tuple[dict[str, str], str]]) -> str:
    """`label,label=value` per series, values to 4 significant digits; "no data" for none."""
    if not series:
        return "no data"
    return "  ".join(
        f"{','.join(v for _, v in sorted(labels.items()))}={float(value):.4g}".lstrip("=")
        for labels, value in series
    )
