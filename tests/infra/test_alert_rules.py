"""The alert rules of infra/prometheus/rules.yml, unit-tested by Prometheus's own promtool.

infra/prometheus/rules.test.yml feeds each alert series that should page and series that
should not; promtool evaluates the rules over them as Prometheus would. Debian's
`prometheus` package ships promtool (`.ci/run` and the workflow install it).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROMETHEUS = Path(__file__).resolve().parents[2] / "infra" / "prometheus"


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return promtool


def test_promtool_checks_the_rules_and_passes_their_unit_tests() -> None:
    promtool = _promtool()
    check = subprocess.run(
        [promtool, "check", "rules", str(PROMETHEUS / "rules.yml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    tests = subprocess.run(
        [promtool, "test", "rules", "rules.test.yml"],
        cwd=PROMETHEUS, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "SUCCESS" in tests.stdout


def test_every_alert_has_a_test_that_fires_it() -> None:
    """A rule without a firing case could be broken and no test would know."""
    rules = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())
    tests = yaml.safe_load((PROMETHEUS / "rules.test.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    fired = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    missing = alerts - fired
    assert not missing, f"alerts no test fires: {sorted(missing)}"


def test_promtool_fails_a_broken_rule(tmp_path: Path) -> None:
    """The check can fail: a rule on a typo'd function is refused."""
    promtool = _promtool()
    broken = tmp_path / "rules.yml"
    broken.write_text(
        "groups:\n- name: g\n  rules:\n  - alert: X\n"
        "    expr: rat(mlops_http_requests_total[5m]) > 0\n"
    )
    check = subprocess.run(
        [promtool, "check", "rules", str(broken)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode != 0


def test_the_drift_alert_fires_where_the_monitoring_decision_alerts() -> None:
    """The rule's share is the setting's default: Prometheus and the decision agree."""
    from mlops.settings import Settings

    rules = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())
    (drift,) = [
        rule for group in rules["groups"] for rule in group["rules"]
        if rule["alert"] == "ModelDataDrift"
    ]  # fmt: skip
    threshold = float(drift["expr"].rsplit(">=", 1)[1])
    assert threshold == Settings.model_fields["monitor_drift_share_alert"].default
