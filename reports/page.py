"""Render a champion's evidence as one self-contained HTML walkthrough page, and write it.

Plots are matplotlib figures inlined as SVG (text kept as text, no embedded fonts), the
style sheet is inline and there is no script: the page works offline and from a file.
The page is a header (the champion, its test metrics, links to the MLflow run, the
Evidently dashboard and the Grafana panels, each saying how to start it off the stack) and
the sections of `reports.sections`.
Every number is computed from the evidence.

`build_page` gathers a champion's evidence and writes its page (`mlops report`, `mlops
demo`); `refresh_pages` builds the pages whose champion has changed since, or that do not
exist yet: the stack's bootstrap builds both, the monitoring flow rebuilds a model's page
after it promotes a challenger.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final, NamedTuple
from urllib.parse import urlsplit

from mlops.case_studies import CASE_STUDIES, CaseStudyName, case_study
from mlops.settings import Settings
from reports.evidence import ModelEvidence
from reports.sections import page_sections

# The champion version a page shows, in its head: `refresh_pages` compares it.
CHAMPION_META: Final = "mlops-champion-version"
_CHAMPION_META = re.compile(rf'<meta name="{CHAMPION_META}" content="([^"]*)">')

# Grafana dashboards and panels of infra/grafana/dashboards (uid, panel id).
GRAFANA_LATENCY_PANEL: Final = ("mlops-serving", 3)
GRAFANA_DRIFT_PANEL: Final = ("mlops-monitoring", 2)

_STYLE = """
body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1b1f24;margin:0;
background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px}
header h1{margin:0 0 4px}
.lede{color:#444;max-width:70ch}
nav.links span.link{display:inline-block;margin:4px 12px 4px 0}
nav.links a{display:inline-block;padding:4px 10px;border:1px solid #c8ccd2;
border-radius:4px;background:#fff;color:#0b57d0;text-decoration:none}
nav.links small{color:#555;margin-left:4px}
section{display:grid;grid-template-columns:minmax(260px,1fr) minmax(320px,1.3fr);gap:24px;
background:#fff;border:1px solid #e1e4e8;border-radius:6px;padding:16px 20px;margin:16px 0}
section.wide{grid-template-columns:1fr}
section h2{margin:0 0 8px;font-size:1.15em}
figure{margin:0}
figure svg{width:100%;height:auto}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
td,th{padding:2px 10px;border-bottom:1px solid #eee;text-align:left}
td.num{text-align:right}
code{background:#f0f2f4;padding:0 3px;border-radius:3px}
.note{color:#555;font-size:.92em}
"""


def render_page(evidence: ModelEvidence, settings: Settings) -> str:
    """The whole page as one HTML string."""
    bundle = evidence.bundle
    title = f"{evidence.case_study} walkthrough: {bundle.name} v{bundle.version}"
    sections = "".join(s.render() for s in page_sections(evidence, settings))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta name="{CHAMPION_META}" content="{html.escape(str(bundle.version))}">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body><main>"
        f"{_header(evidence, settings, title)}{sections}"
        f'<p class="note">Built {evidence.built_at:%Y-%m-%d %H:%M} UTC by '
        f"<code>mlops report {evidence.case_study}</code> from MLOPS_HOME "
        f"<code>{html.escape(str(settings.home))}</code>.</p></main></body></html>"
    )


def _header(evidence: ModelEvidence, settings: Settings, title: str) -> str:
    bundle, meta = evidence.bundle, evidence.bundle.meta
    links = "".join(
        f'<span class="link"><a href="{html.escape(link.url)}">{html.escape(link.label)}</a>'
        + (f" <small>{link.how}</small>" if link.how else "")
        + "</span>"
        for link in header_links(evidence, settings)
    )
    rows = "".join(
        f'<tr><th>{html.escape(k)}</th><td class="num">{_fmt(v)}</td></tr>'
        for k, v in sorted(meta.test_metrics.items())
    )
    gate = evidence.tags.get("promotion_gate", "not recorded")
    return (
        f"<header><h1>{html.escape(title)}</h1>"
        f'<p class="lede">The registry\'s <code>champion</code> of <code>{bundle.name}</code> is '
        f"version {bundle.version}, the <code>{html.escape(meta.candidate)}</code> candidate of "
        f"MLflow run <code>{bundle.run_id}</code>. The promotion gate said: "
        f"<em>{html.escape(gate)}</em>. Its decision threshold is {meta.threshold:.4f}; its "
        f"ONNX export scored like the native model to within "
        f"{meta.parity_max_abs_diff:.1e}. The plots below are drawn on the "
        f"{len(evidence.reference):,} test rows kept as its monitoring reference (a seeded "
        "sample of the held-out test window, scored by the exported model); the table holds "
        "the test metrics of the whole window, as the run logged them.</p>"
        f'<nav class="links">{links}</nav>'
        f'<table class="metrics" id="test-metrics">{rows}</table>'
        f"{_scenario_recall(evidence)}</header>"
    )


def _scenario_recall(evidence: ModelEvidence) -> str:
    """Which fraud the champion misses: its test recall on each fraud scenario's payments."""
    if not evidence.recall_by_scenario:
        return ""
    rows = "".join(
        f'<tr><th>{html.escape(name)}</th><td class="num">{_fmt(recall)}</td></tr>'
        for name, recall in evidence.recall_by_scenario.items()
    )
    return (
        "<p>Recall at the threshold on the test frauds of each scenario "
        "(<code>TX_FRAUD_SCENARIO</code>): which fraud it catches, and which it misses.</p>"
        f'<table class="metrics" id="recall-by-scenario">{rows}</table>'
    )


class Link(NamedTuple):
    """A link of the page's header, and how to start what it points at (HTML; "": running)."""

    label: str
    url: str
    how: str = ""


def _start_with(command: str, url: str, default_port: int) -> str:
    """ "start it with `mlops ui ...`", with the port of `url` when it is not the default."""
    port = urlsplit(url).port
    option = f" --port {port}" if port and port != default_port else ""
    return f"start it with <code>{html.escape(command + option)}</code>"


def header_links(evidence: ModelEvidence, settings: Settings) -> list[Link]:
    """The MLflow run, the Evidently dashboard and the Grafana panels, each saying how to
    start it: the demo serves only the API (and this page). In the stack they all run."""
    bundle = evidence.bundle
    mlflow = settings.mlflow_ui_url.rstrip("/")
    evidently = settings.evidently_ui_url.rstrip("/")
    grafana = settings.grafana_url.rstrip("/")
    latency_uid, latency_panel = GRAFANA_LATENCY_PANEL
    drift_uid, drift_panel = GRAFANA_DRIFT_PANEL
    in_stack = settings.profile == "stack"
    grafana_note = (
        "" if in_stack else "in the docker-compose stack (<code>docker compose up</code>)"
    )
    defaults = {name: field.default for name, field in Settings.model_fields.items()}
    return [
        Link(
            "MLflow run",
            f"{mlflow}/#/experiments/{evidence.experiment_id}/runs/{bundle.run_id}",
            ""
            if in_stack
            else _start_with("mlops ui mlflow", mlflow, defaults["stack_mlflow_port"]),
        ),
        Link(
            "Evidently dashboard",
            f"{evidently}/projects/{evidence.evidently_project_id}"
            if evidence.evidently_project_id
            else f"{evidently}/",
            ""
            if in_stack
            else _start_with("mlops ui monitoring", evidently, defaults["stack_evidently_port"]),
        ),
        Link(
            "Grafana: serving latency",
            f"{grafana}/d/{latency_uid}/?viewPanel={latency_panel}",
            grafana_note,
        ),
        Link(
            "Grafana: drift",
            f"{grafana}/d/{drift_uid}/?var-model={bundle.name}&viewPanel={drift_panel}",
            grafana_note,
        ),
        Link("All walkthrough pages", "./"),
    ]


def _fmt(value: float) -> str:
    if float(value).is_integer() and abs(value) >= 10:
        return f"{value:,.0f}"
    return f"{value:.4f}"


_SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def page_file_name(case_study: str) -> str:
    """`<case study>.html`: the name the API serves the page under (`/reports/<name>`)."""
    if not _SAFE_NAME.match(case_study):
        raise ValueError(f"not a page name: {case_study!r}")
    return f"{case_study}.html"


def write_page(evidence: ModelEvidence, settings: Settings) -> Path:
    """Write the page to `settings.report_pages_dir`, whole or not at all (write, rename)."""
    folder = settings.report_pages_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / page_file_name(evidence.case_study)
    scratch = path.with_suffix(".html.tmp")
    scratch.write_text(render_page(evidence, settings), encoding="utf-8")
    scratch.replace(path)
    return path


def build_page(settings: Settings, name: str, serving_bench: dict[str, Any] | None = None) -> Path:
    """Gather the champion's evidence (its monitoring decisions too) and write the case
    study `name`'s page; raises `reports.evidence.NoChampion` without one."""
    from monitoring.decision_log import read_decisions
    from reports.evidence import gather

    study = case_study(name)
    decisions = read_decisions(settings, study.model_name(settings))
    evidence = gather(settings, study.name, decisions=decisions, serving_bench=serving_bench)
    return write_page(evidence, settings)


def page_version(path: Path) -> str | None:
    """The champion version the page at `path` shows; None without a page (or a version)."""
    try:
        head = path.read_text(encoding="utf-8")[:2000]
    except FileNotFoundError:
        return None
    found = _CHAMPION_META.search(head)
    return html.unescape(found[1]) if found else None


def refresh_pages(
    settings: Settings,
    names: Iterable[CaseStudyName] = tuple(CASE_STUDIES),
    *,
    missing: bool = True,
) -> dict[str, str]:
    """Build each case study's page whose champion is not the one it shows; with `missing`,
    also the pages not built yet (without, those stay unbuilt). What was done, by case
    study: "built v3", "up to date (v3)", "no page", "no champion"."""
    from mlflow import MlflowClient

    from mlops.registry import champion_version

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    done: dict[str, str] = {}
    for name in names:
        champion = champion_version(client, case_study(name).model_name(settings))
        page = settings.report_pages_dir / page_file_name(name)
        shown = page_version(page)
        if champion is None:
            done[name] = "no champion"
        elif not page.exists() and not missing:
            done[name] = "no page"
        elif shown == champion:
            done[name] = f"up to date (v{champion})"
        else:
            build_page(settings, name)
            done[name] = f"built v{champion}"
    return done
