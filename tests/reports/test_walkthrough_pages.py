"""`mlops report` builds each case study's page from its champion; it renders in Chromium.

The pages come from the session's real runs (`churn_run`, `fraud_run`): real MLflow
registry, real references, real native models and ONNX sessions, real Chromium.
"""

from __future__ import annotations

import json
import struct
import subprocess
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.main import app
from mlops.settings import Settings
from reports.evidence import ModelEvidence, drift_points, gather, read_serving_bench
from reports.page import GRAFANA_DRIFT_PANEL, GRAFANA_LATENCY_PANEL, Link, header_links, render_page
from tests.helpers.runs import isolated_home, run_mlops
from tests.helpers.services import require_chromium

ROOT = Path(__file__).resolve().parents[2]
PLOTS = {
    "roc",
    "precision-recall",
    "calibration",
    "threshold",
    "confusion",
    "importance",
    "explanation-1",
    "explanation-2",
    "explanation-3",
    "latency",
}
LINKS = ("MLflow run", "Evidently dashboard", "Grafana: serving latency", "Grafana: drift")
WINDOW = (1200, 1600)


@dataclass
class Built:
    page: Path
    evidence: ModelEvidence
    run: dict[str, Any]


@pytest.fixture(scope="module")
def built(
    churn_run: dict[str, Any], fraud_run: dict[str, Any], prefect_api: str
) -> dict[str, Built]:
    """Both pages built by `mlops report` (fraud's in its own process, as a user runs it;
    churn's in this one), with the evidence they were built from."""
    result = run_mlops("report", "fraud", "--json", home=fraud_run["home"], prefect_api=prefect_api)
    assert result.returncode == 0, result.stderr[-3000:]
    pages = {"fraud": Path(json.loads(result.stdout.strip().splitlines()[-1])["page"])}
    built = {}
    for case_study, run in (("churn", churn_run), ("fraud", fraud_run)):
        with isolated_home(run["home"]):
            if case_study == "churn":
                invoked = CliRunner().invoke(app, ["report", "churn", "--json"])
                assert invoked.exit_code == 0, invoked.output
                pages["churn"] = Path(json.loads(invoked.stdout.strip().splitlines()[-1])["page"])
            evidence = gather(Settings(), case_study)  # type: ignore[arg-type]
        built[case_study] = Built(pages[case_study], evidence, run)
    return built


@dataclass
class PlotBlock:
    points: int
    paths: int = 0
    drawn_paths: int = 0


@dataclass
class RenderedPage(HTMLParser):
    """What the browser's DOM holds: plot blocks, their SVG paths, links, forbidden tags."""

    plots: dict[str, PlotBlock] = field(default_factory=dict)
    sections: list[str] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)
    external_loads: list[str] = field(default_factory=list)
    _current: str | None = None
    _depth: int = 0
    _link: str | None = None

    def __post_init__(self) -> None:
        super().__init__()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "section":
            self.sections.append(attributes.get("id") or "")
            if "data-plot" in attributes:
                self._current = attributes["data-plot"]
                assert self._current is not None
                self.plots[self._current] = PlotBlock(int(attributes["data-points"] or 0))
                self._depth = 0
        if self._current is not None:
            self._depth += tag == "section"
            if tag == "path":
                self.plots[self._current].paths += 1
                if len(attributes.get("d") or "") > 10:
                    self.plots[self._current].drawn_paths += 1
        if tag in ("script", "link", "iframe", "img") or any(
            (value or "").startswith(("http:", "https:", "//"))
            for name, value in attrs
            if name in ("src", "srcset")
        ):
            self.external_loads.append(tag)
        if tag == "a":
            self._link = attributes.get("href") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "section" and self._current is not None:
            self._depth -= 1
            if self._depth <= 0:
                self._current = None
        if tag == "a":
            self._link = None

    def handle_data(self, data: str) -> None:
        if self._link is not None and data.strip():
            self.links[data.strip()] = self._link


def _chromium_run(page: Path, profile: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            require_chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            *arguments,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


@pytest.mark.slow
@pytest.mark.parametrize("case_study", ["churn", "fraud"])
def test_each_page_renders_in_chromium_with_every_plot_drawn(
    built: dict[str, Built], case_study: str, tmp_path: Path
) -> None:
    page = built[case_study].page
    screenshot = tmp_path / f"{case_study}.png"
    shot = _chromium_run(
        page,
        tmp_path / "profile-shot",
        f"--screenshot={screenshot}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    )
    assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-2000:]
    assert _png_size(screenshot) == WINDOW

    dom = _chromium_run(page, tmp_path / "profile-dom", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = RenderedPage()
    rendered.feed(dom.stdout)

    assert set(rendered.plots) == PLOTS, f"plots rendered: {sorted(rendered.plots)}"
    for name, block in rendered.plots.items():
        assert block.points > 0, f"{case_study}: plot {name} says it has no data"
        assert block.drawn_paths > 0, f"{case_study}: plot {name} drew no path"
    assert "drift" in rendered.sections
    assert rendered.external_loads == [], "the page must load nothing: it works offline"
    for label in LINKS:
        assert label in rendered.links, f"{case_study}: no {label!r} link"
    run_id = built[case_study].evidence.bundle.run_id
    assert rendered.links["MLflow run"].endswith(f"/runs/{run_id}")


@pytest.mark.slow
def test_pages_show_this_runs_figures(built: dict[str, Built]) -> None:
    for case_study, item in built.items():
        text = item.page.read_text(encoding="utf-8")
        meta = item.evidence.bundle.meta
        assert item.evidence.bundle.version == str(item.run["model_version"])
        assert f"{item.run['test_metrics']['roc_auc']:.4f}" in text, case_study
        assert f"threshold is {meta.threshold:.4f}" in text
        assert item.evidence.bundle.run_id in text
        # No monitoring check ran in the session's homes: the page says so, not a blank plot.
        assert "No monitoring check" in text
        # The demo serves no UI: each link says how to start what it points at.
        assert "start it with <code>mlops ui mlflow</code>" in text
        assert "start it with <code>mlops ui monitoring</code>" in text
        assert "in the docker-compose stack" in text
    fraud_page = built["fraud"].page.read_text(encoding="utf-8")
    assert "MLOPS_FRAUD_COST_MISSED_FRAUD" in fraud_page
    # Which fraud the champion misses: the run's recall of each scenario, on the page.
    recall = built["fraud"].run["test_recall_by_scenario"]
    assert recall and built["fraud"].evidence.recall_by_scenario == pytest.approx(recall)
    assert 'id="recall-by-scenario"' in fraud_page
    assert 'id="recall-by-scenario"' not in built["churn"].page.read_text(encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize("case_study", ["churn", "fraud"])
def test_explanations_add_up_to_the_served_score(built: dict[str, Built], case_study: str) -> None:
    evidence = built[case_study].evidence
    contributions = evidence.contributions
    log_odds = contributions.bias + contributions.values.sum(axis=1)
    rebuilt = 1 / (1 + np.exp(-log_odds))
    # The reference's score is the ONNX model's, which matches the native one to parity.
    tolerance = 10 * Settings().parity_tolerance
    assert np.max(np.abs(rebuilt - evidence.scores)) < tolerance
    assert len(evidence.explanations) == 3
    for example in evidence.explanations:
        assert abs(1 / (1 + np.exp(-example.log_odds)) - example.score) < tolerance
    assert any(e.label == 1 for e in evidence.explanations)


@pytest.mark.slow
def test_fraud_page_names_its_own_explanation_method(built: dict[str, Built]) -> None:
    for item in built.values():
        method = item.evidence.contributions.method
        candidate = item.evidence.bundle.meta.candidate
        expected = "pred_contribs" if candidate.startswith("xgboost") else "standardised value"
        assert expected in method, (candidate, method)
        assert method in item.page.read_text(encoding="utf-8")


def test_report_without_a_champion_says_what_to_run_first(isolated_env: Path) -> None:
    result = CliRunner().invoke(app, ["report", "churn"])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "run `mlops pipeline churn`" in result.stderr
    assert "Traceback" not in result.output
    assert not (isolated_env / "mlflow.db").exists(), "no empty registry created to say no"


def _header_links(settings: Settings) -> dict[str, Link]:
    bundle = SimpleNamespace(run_id="abc123", name="churn")
    evidence = SimpleNamespace(bundle=bundle, experiment_id="1", evidently_project_id="p1")
    return {link.label: link for link in header_links(evidence, settings)}  # type: ignore[arg-type]


def test_each_link_says_how_to_start_what_it_points_at(monkeypatch: pytest.MonkeyPatch) -> None:
    links = _header_links(Settings())
    assert links["MLflow run"].url == "http://127.0.0.1:5000/#/experiments/1/runs/abc123"
    assert links["MLflow run"].how == "start it with <code>mlops ui mlflow</code>"
    assert links["Evidently dashboard"].how == "start it with <code>mlops ui monitoring</code>"
    for label in ("Grafana: serving latency", "Grafana: drift"):
        assert links[label].how.startswith("in the docker-compose stack"), label
    assert links["All walkthrough pages"].how == ""

    monkeypatch.setenv("MLOPS_MLFLOW_UI_URL", "http://127.0.0.1:18250/")
    links = _header_links(Settings())
    assert links["MLflow run"].how == "start it with <code>mlops ui mlflow --port 18250</code>"
    assert links["MLflow run"].url.startswith("http://127.0.0.1:18250/#/")

    # In the stack every one of them runs: no note.
    monkeypatch.setenv("MLOPS_PROFILE", "stack")
    monkeypatch.setenv("MLOPS_ADMIN_TOKEN", "a-token-of-our-own")
    assert {link.how for link in _header_links(Settings()).values()} == {""}


def test_grafana_links_point_at_real_panels() -> None:
    for uid, panel in (GRAFANA_LATENCY_PANEL, GRAFANA_DRIFT_PANEL):
        boards = [
            json.loads(p.read_text())
            for p in (ROOT / "infra" / "grafana" / "dashboards").glob("*.json")
        ]
        board = next((b for b in boards if b.get("uid") == uid), None)
        assert board is not None, f"no Grafana dashboard with uid {uid}"
        assert panel in {p["id"] for p in board["panels"]}, f"{uid} has no panel {panel}"


@pytest.mark.slow
def test_a_serving_benchmark_file_adds_the_apis_latency(
    built: dict[str, Built], tmp_path: Path
) -> None:
    # The shape `mlops bench serving --json` ends with; its figures are this test's own.
    ours = {"c1": {"p50_ms": 0.91, "p99_ms": 6.72, "rps": 924.0}}
    ours["c16"] = {"p50_ms": 15.4, "p99_ms": 44.7, "rps": 941.0}
    saved = tmp_path / "bench.txt"
    machine = {"cpus": 2, "memory_gib": 23.5}
    figures = {
        "model": "churn v1",
        "machine": machine,
        "load_avg_before": 0.8,
        "servers": {"ours": ours},
    }
    saved.write_text("serving churn\n  ours  1  0.91\n" + json.dumps(figures) + "\n")

    page = render_page(
        replace(built["churn"].evidence, serving_bench=read_serving_bench(saved)), Settings()
    )
    assert "at 1 connection p50 0.91 ms, p99 6.72 ms, 924 req/s" in page
    assert "p99 44.70 ms, 941 req/s. Machine: 2 cores, 23.5 GiB, load average 0.80" in page

    (tmp_path / "other.txt").write_text('{"not": "a benchmark"}\n')
    result = CliRunner().invoke(
        app, ["report", "churn", "--serving-bench", str(tmp_path / "other.txt")]
    )
    assert result.exit_code == 2
    assert "holds no `mlops bench serving --json` line" in result.stderr


@pytest.mark.slow
def test_drift_over_time_draws_every_check_of_the_decision_log(built: dict[str, Built]) -> None:
    from monitoring.decisions import Decision

    def entry(hour: int, decision: Decision) -> dict[str, Any]:
        # The shape `mlops monitor` appends to monitoring/decisions/<model>.jsonl.
        return {
            "decided_at": f"2026-03-02T{hour:02d}:00:00+00:00",
            "model_version": "1",
            "decision": decision.to_dict(),
        }

    log = [
        entry(9, Decision("nothing", ["12 predictions: waiting for more"], {"current_rows": 12})),
        entry(
            10,
            Decision(
                "nothing",
                ["quiet"],
                {"drift_share": 0.03, "prediction_drift_score": 0.02, "current_rows": 400},
            ),
        ),
        entry(
            11,
            Decision(
                "alert",
                ["drift"],
                {"drift_share": 0.2, "prediction_drift_score": 0.08, "current_rows": 500},
            ),
        ),
        entry(
            12,
            Decision(
                "retrain",
                ["drift"],
                {"drift_share": 0.6, "prediction_drift_score": 0.3, "current_rows": 450},
            ),
        ),
    ]
    points = drift_points(log)
    assert [p.action for p in points] == ["nothing", "alert", "retrain"]

    page = render_page(replace(built["fraud"].evidence, drift=points), Settings())
    rendered = RenderedPage()
    rendered.feed(page)
    assert rendered.plots["drift"].points == 6
    assert rendered.plots["drift"].drawn_paths > 0
    assert "3 monitoring checks" in page and "2026-03-02 12:00 v1: retrain" in page
