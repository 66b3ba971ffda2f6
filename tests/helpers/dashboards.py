"""The provisioned Grafana dashboards' queries and the alert rules' series, as Prometheus runs them.

Shared by the static checks (tests/infra/test_observability.py) and the live one against
the native stack's Prometheus (tests/stack/test_native_stack.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
DASHBOARDS = sorted((INFRA / "grafana" / "dashboards").glob("*.json"))
RULES: dict[str, Any] = yaml.safe_load((INFRA / "prometheus" / "rules.yml").read_text())
# What Grafana puts for its variables: every value of a multi-value variable ("All"), and
# $__rate_interval as four scrape intervals of the data source's timeInterval (15 s).
RATE_INTERVAL = "1m"


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
        assert values, f"{dashboard['uid']} variable {variable['name']}: {query}"
        metric, label = values.groups()
        found.append((f"{dashboard['uid']} ${variable['name']}", f"max by ({label}) ({metric})"))
    return found


def instant_expr(expr: str) -> str:
    """A panel's PromQL as Grafana sends it with every variable at "All"."""
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    return re.sub(r'=~"\$\w+"', '=~".*"', expr)


def rule_operands(expr: str) -> list[str]:
    """What a rule compares with its thresholds: each side of a top-level `and` or
    `unless`, its final comparison with a number dropped. Each has data on a running stack,
    firing or not (a rule whose operand has none could never fire)."""
    sides = re.split(r"\s+(?:and|unless)\s+", " ".join(expr.split()))
    return [re.sub(r"\s*(?:>=|<=|==|!=|>|<)\s*[-+*/\d.\s]+$", "", side) for side in sides]


def vector_selectors(expr: str) -> list[str]:
    """The series selectors of a rule's expression: `metric` or `metric{matchers}`."""
    found = re.findall(r"\b(mlops_\w+)(\{[^}]*\})?", expr)
    return [name + matchers for name, matchers in found]


def all_dashboards() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in DASHBOARDS]
