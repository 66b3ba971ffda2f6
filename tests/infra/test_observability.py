"""Prometheus and Grafana of the stack, checked against the code: every dashboard query
names metrics and labels the API exports, so renaming a metric in serving/metrics.py
breaks this test instead of silently emptying a panel. (The Postgres init script is run
by tests/infra/test_postgres_roles.py.)"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.monitoring_results import MonitoringCollector
from mlops.settings import Settings
from serving.app import create_app
from serving.metrics import Metrics
from tests.helpers.dashboards import DASHBOARDS, INFRA, ROOT, grafana_queries, panels


@dataclass(frozen=True)
class Family:
    kind: str  # counter, histogram or gauge
    labels: frozenset[str]


# Exported by the monitoring flows (another branch of this issue): assumed names, gauges
# labelled by model (and the decision taken).
DRIFT_FAMILIES = {
    "mlops_drift_share": Family("gauge", frozenset({"model"})),
    "mlops_prediction_drift_score": Family("gauge", frozenset({"model"})),
    "mlops_monitoring_decision": Family("gauge", frozenset({"model", "decision"})),
}
# Added by Prometheus to every scraped series (prometheus.yml adds `service`).
TARGET_LABELS = frozenset({"job", "instance", "service"})
PROMQL_FUNCTIONS = frozenset(
    [
        "abs",
        "avg",
        "avg_over_time",
        "ceil",
        "clamp_max",
        "clamp_min",
        "count",
        "delta",
        "deriv",
        "floor",
        "histogram_quantile",
        "increase",
        "irate",
        "label_replace",
        "last_over_time",
        "max",
        "max_over_time",
        "min",
        "min_over_time",
        "quantile",
        "rate",
        "round",
        "scalar",
        "sort",
        "sum",
        "sum_over_time",
        "time",
        "topk",
        "bottomk",
        "vector",
    ]
)
PROMQL_KEYWORDS = frozenset(
    [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
    ]
)
_KINDS = {
    "Counter": "counter",
    "CounterMetricFamily": "counter",
    "Histogram": "histogram",
    "HistogramMetricFamily": "histogram",
    "Gauge": "gauge",
    "GaugeMetricFamily": "gauge",
}


def _defined_families() -> dict[str, Family]:
    """Metric families serving/metrics.py, the stream scorer and the monitoring results'
    collector create, read from their source: name, type, labels."""
    sources = [
        Path(Metrics.__module__.replace(".", "/") + ".py"),
        Path("serving/fraud_stream.py"),
        Path(MonitoringCollector.__module__.replace(".", "/") + ".py"),
    ]
    families = {}
    for node in (n for s in sources for n in ast.walk(ast.parse((ROOT / s).read_text()))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        kind = _KINDS.get(node.func.id)
        if kind is None or not node.args or not isinstance(node.args[0], ast.Constant):
            continue
        labels: list[str] = []
        keywords = {k.arg: k.value for k in node.keywords}
        label_node = node.args[2] if len(node.args) > 2 else keywords.get("labels")
        if isinstance(label_node, ast.List):
            labels = [elt.value for elt in label_node.elts if isinstance(elt, ast.Constant)]
        families[str(node.args[0].value)] = Family(kind, frozenset(labels))
    return families


def _series(families: dict[str, Family]) -> dict[str, tuple[Family, frozenset[str]]]:
    """Series names Prometheus stores, with the labels each carries."""
    series = {}
    for name, family in families.items():
        if family.kind == "counter":
            series[f"{name}_total"] = (family, family.labels)
        elif family.kind == "histogram":
            series[f"{name}_bucket"] = (family, family.labels | {"le"})
            series[f"{name}_sum"] = series[f"{name}_count"] = (family, family.labels)
        else:
            series[name] = (family, family.labels)
    return series


SERIES = _series({**_defined_families(), **DRIFT_FAMILIES})


@dataclass(frozen=True)
class Query:
    metrics: frozenset[str]
    functions: frozenset[str]
    labels: frozenset[str]


def parse_promql(expr: str) -> Query:
    """Metric names, functions and label names a PromQL expression uses (enough for ours)."""
    labels: set[str] = set()
    text = expr
    for matchers in re.findall(r"\{([^}]*)\}", text):
        labels |= set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r'"(?:[^"\\]|\\.)*"', " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors, Grafana's $__rate_interval
    for clause in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", text):
        labels |= {label.strip() for label in clause.split(",") if label.strip()}
    text = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", text)
    metrics, functions = set(), set()
    for match in re.finditer(r"(?<![\w$.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call:
            functions.add(word)
        elif word not in PROMQL_KEYWORDS:
            metrics.add(word)
    return Query(frozenset(metrics), frozenset(functions), frozenset(labels))


@pytest.fixture(scope="module", params=DASHBOARDS, ids=lambda path: path.stem)
def dashboard(request: pytest.FixtureRequest) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(request.param.read_text())
    return loaded


def test_every_query_uses_only_exported_metrics_and_their_labels(
    dashboard: dict[str, Any],
) -> None:
    queries = grafana_queries(dashboard)
    assert queries
    for where, expr in queries:
        query = parse_promql(expr)
        assert query.metrics, f"{where}: no metric in {expr}"
        unknown = query.metrics - set(SERIES)
        assert not unknown, f"{where}: {sorted(unknown)} are not exported (serving/metrics.py)"
        assert query.functions <= PROMQL_FUNCTIONS, f"{where}: {query.functions}"
        allowed = set(TARGET_LABELS).union(*(SERIES[m][1] for m in query.metrics))
        assert query.labels <= allowed, f"{where}: labels {sorted(query.labels - allowed)}"


def test_the_dashboards_show_what_the_issue_asks_for() -> None:
    exprs = " ".join(
        expr for path in DASHBOARDS for _, expr in grafana_queries(json.loads(path.read_text()))
    )
    for needed in (
        "histogram_quantile(0.5, sum by (le, endpoint) (rate(mlops_http_request_duration",
        "histogram_quantile(0.99, sum by (le, endpoint) (rate(mlops_http_request_duration",
        "rate(mlops_http_requests_total",  # throughput
        "sum by (error) (rate(mlops_http_errors_total",
        "mlops_prediction_score_bucket",  # the score distribution
        "sum by (endpoint, model_version)",  # which version serves each model
        *DRIFT_FAMILIES,
    ):
        assert needed in exprs, needed


def test_the_parser_sees_what_a_rename_would_break() -> None:
    query = parse_promql(
        'histogram_quantile(0.99, sum by (le, model) (rate(mlops_score_bucket{model=~"$m"}[5m])))'
    )
    assert query.metrics == {"mlops_score_bucket"} and query.labels == {"le", "model"}
    assert query.functions == {"histogram_quantile", "sum", "rate"}
    assert "mlops_score_bucket" not in SERIES


def test_the_source_reading_agrees_with_a_live_exposition() -> None:
    metrics = Metrics()
    metrics.observe_request("/v1/churn/predict", 200, "1", 0.01)
    metrics.errors.labels("not_found").inc()
    metrics.scores.labels("churn").observe(0.4)
    metrics.feature_read_seconds.labels("churn").observe(0.001)
    exposed = {
        sample.name
        for family in metrics.registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }
    assert exposed and exposed <= set(SERIES)


def test_panels_use_the_provisioned_data_source(dashboard: dict[str, Any]) -> None:
    provisioned = yaml.safe_load(
        (INFRA / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    (source,) = provisioned["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    for panel in panels(dashboard):
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}
            assert panel["targets"], panel["title"]
    uids = [json.loads(path.read_text())["uid"] for path in DASHBOARDS]
    assert len(set(uids)) == len(uids)


def test_grafana_loads_the_dashboards_folder() -> None:
    provider = yaml.safe_load(
        (INFRA / "grafana/provisioning/dashboards/dashboards.yml").read_text()
    )
    (entry,) = provider["providers"]
    assert entry["type"] == "file" and entry["options"]["path"] == "/etc/grafana/dashboards"
    assert len(DASHBOARDS) >= 2


def test_prometheus_scrapes_the_api_metrics_route() -> None:
    config = yaml.safe_load((INFRA / "prometheus/prometheus.yml").read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "mlops-api"]
    routes = {getattr(route, "path", None) for route in create_app(Settings()).routes}
    assert job["metrics_path"] in routes
    targets = [target for group in job["static_configs"] for target in group["targets"]]
    assert targets == [f"api:{Settings.model_fields['api_port'].default}"]


def test_every_alert_rule_uses_only_exported_metrics_and_is_loaded() -> None:
    config = yaml.safe_load((INFRA / "prometheus/prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules.yml"]
    rules = [
        rule
        for group in yaml.safe_load((INFRA / "prometheus/rules.yml").read_text())["groups"]
        for rule in group["rules"]
    ]
    assert {"PredictionLogNotPersisting", "PredictionLogShippingFailing"} <= {
        rule["alert"] for rule in rules
    }
    for rule in rules:
        query = parse_promql(rule["expr"])
        unknown = query.metrics - set(SERIES)
        assert query.metrics and not unknown, f"{rule['alert']}: {sorted(unknown)} not exported"
        assert query.functions <= PROMQL_FUNCTIONS, f"{rule['alert']}: {query.functions}"
        allowed = set(TARGET_LABELS).union(*(SERIES[m][1] for m in query.metrics))
        assert query.labels <= allowed, f"{rule['alert']}: {sorted(query.labels - allowed)}"


# What Grafana 11 provisions without plugins: its built-in panel types, and the unit ids of
# its value formats (packages/grafana-data/src/valueFormats/categories.ts), those a
# dashboard of this platform may use.
GRAFANA_PANEL_TYPES = frozenset(
    [
        "row",
        "timeseries",
        "stat",
        "gauge",
        "bargauge",
        "table",
        "state-timeline",
        "status-history",
        "heatmap",
        "histogram",
        "piechart",
        "barchart",
        "text",
        "logs",
        "nodeGraph",
        "trend",
        "xychart",
        "alertlist",
    ]
)
GRAFANA_UNITS = frozenset(
    [
        "none",
        "short",
        "percent",
        "percentunit",
        "sci",
        "locale",
        "s",
        "ms",
        "µs",
        "ns",
        "m",
        "h",
        "d",
        "dtdurations",
        "dthms",
        "reqps",
        "rps",
        "wps",
        "rpm",
        "ops",
        "opm",
        "bytes",
        "decbytes",
        "bits",
        "kbytes",
        "mbytes",
        "KBs",
        "MBs",
        "Bps",
        "binBps",
        "dateTimeAsIso",
        "dateTimeFromNow",
    ]
)


def test_grafana_can_provision_each_dashboard(dashboard: dict[str, Any]) -> None:
    """What Grafana checks, or silently gets wrong, when it provisions the file: known panel
    types and units, unique panel ids and query refIds, panels inside the 24-column grid
    without overlapping, and every query on the provisioned data source."""
    source = yaml.safe_load((INFRA / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = source["datasources"][0]["uid"]
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), f"{dashboard['uid']}: panel ids repeat"
    cells: set[tuple[int, int]] = set()
    for panel in panels(dashboard):
        where = f"{dashboard['uid']} / {panel.get('title')}"
        assert panel["type"] in GRAFANA_PANEL_TYPES, f"{where}: panel type {panel['type']}"
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        assert unit is None or unit in GRAFANA_UNITS, f"{where}: unit {unit}"
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, where
        mine = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])}  # fmt: skip
        assert not mine & cells, f"{where}: overlaps another panel"
        cells |= mine
        refs = [target["refId"] for target in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), f"{where}: refIds repeat"
        for target in panel.get("targets", []):
            assert target.get("datasource", panel["datasource"])["uid"] == uid, where
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"] == {"type": "prometheus", "uid": uid}, variable["name"]
