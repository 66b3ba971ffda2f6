"""`mlops report churn|fraud`: build a case study's walkthrough page from its champion.

The page (`reports.page`) is a static, self-contained HTML file under
`MLOPS_HOME/reports/pages/`, which the API serves under `/reports/`. `mlops demo` builds
both pages with `build_pages` before it serves. Exit codes: 0 when the page is written,
2 when it cannot be built (no champion yet, an unreadable benchmark file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import CaseStudy, fail, prepare
from mlops.case_studies import CASE_STUDIES

if TYPE_CHECKING:
    from mlops.settings import Settings


def pages_address(settings: Settings) -> str:
    """Where the API serves the pages' index."""
    return f"http://{settings.api_host}:{settings.api_port}/reports/"


def build_pages(settings: Settings) -> list[Path]:
    """Both case studies' pages (what `mlops demo` ends with)."""
    from reports.page import build_page

    return [build_page(settings, name) for name in CASE_STUDIES]


def report(
    model: Annotated[CaseStudy, typer.Argument(help="Which case study's champion.")],
    serving_bench: Annotated[
        Path | None,
        typer.Option(
            help="Output of `mlops bench serving --json` saved to a file: adds the API's "
            "latency (default: the last `mlops bench serving` run on this home, if any)."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with one JSON line: the page and its address.")
    ] = False,
) -> None:
    """Build the case study's walkthrough page (plots and figures of its champion's run)."""
    from reports.evidence import NoChampion, read_serving_bench
    from reports.page import build_page

    settings = prepare()
    if serving_bench is None and settings.serving_bench_file.is_file():
        serving_bench = settings.serving_bench_file
    try:
        bench = None if serving_bench is None else read_serving_bench(serving_bench)
    except (OSError, ValueError) as error:
        fail(f"cannot read the serving benchmark: {error}")
    try:
        path = build_page(settings, model.value, bench)
    except NoChampion as error:
        fail(
            f"no {model.value} champion in {settings.home} ({error}): "
            f"run `mlops pipeline {model.value}` (or `mlops demo`) first"
        )
    address = pages_address(settings) + path.name
    if as_json:
        typer.echo(json.dumps({"page": str(path), "address": address}))
        return
    typer.echo(f"wrote {path}")
    typer.echo(f"served at {address} (by `mlops serve`)")
