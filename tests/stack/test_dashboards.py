"""`mlops stack panels`: the Grafana panels as numbers (the live reading is the native
stack's test, `tests/stack/test_native_stack.py`, which reads every panel this way)."""

from __future__ import annotations

import socket

from typer.testing import CliRunner

from cli.main import app
from stack.dashboards import dashboards, describe, grafana_queries


def test_every_panel_query_and_variable_is_read() -> None:
    queries = [where for dashboard in dashboards() for where, _ in grafana_queries(dashboard)]
    assert len(dashboards()) >= 2
    assert any(" / " in where for where in queries) and any("$" in where for where in queries)


def test_a_series_is_its_labels_and_its_value_and_no_series_says_so() -> None:
    assert describe([]) == "no data"
    assert describe([({}, "0.25")]) == "0.25"
    series = [({"model": "churn", "decision": "alert"}, "1"), ({"model": "fraud"}, "0.123456")]
    assert describe(series) == "alert,churn=1  fraud=0.1235"


def test_no_prometheus_is_a_clear_error() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    result = CliRunner().invoke(
        app, ["stack", "panels", "--prometheus", f"http://127.0.0.1:{port}"]
    )
    assert result.exit_code == 2
    assert f"cannot query Prometheus at http://127.0.0.1:{port}" in result.output
