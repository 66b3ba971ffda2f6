"""The provisioned Grafana dashboards' queries and the alert rules' series, as Prometheus runs them.

Shared by the static checks (tests/infra/test_observability.py) and the live one against
the native stack's Prometheus (tests/stack/test_native_stack.py). The dashboards are read
as `mlops stack panels` reads them (`stack.dashboards`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from stack.dashboards import DASHBOARDS_DIR, grafana_queries, instant_expr, panels

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
DASHBOARDS = sorted(DASHBOARDS_DIR.glob("*.json"))
RULES: dict[str, Any] = yaml.safe_load((INFRA / "prometheus" / "rules.yml").read_text())


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


__all__ = [
    "DASHBOARDS",
    "INFRA",
    "ROOT",
    "RULES",
    "grafana_queries",
    "instant_expr",
    "panels",
    "rule_operands",
    "vector_selectors",
]
