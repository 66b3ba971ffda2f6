"""`mlops ui monitoring` (the Evidently UI on the project's workspace) and `mlops bench monitoring`.

Kept apart from `pipelines.cli`, which adds `ui_app` and `bench_monitoring` to its apps.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

ui_app = typer.Typer(help="Web UIs of the platform's tools.", no_args_is_help=True)


def evidently_executable() -> Path | None:
    """The `evidently` CLI of this environment (beside its Python), else the one on PATH."""
    beside = Path(sys.executable).parent / "evidently"
    if beside.exists():
        return beside
    found = shutil.which("evidently")
    return Path(found) if found else None


@ui_app.command("monitoring")
def ui_monitoring(
    host: Annotated[str, typer.Option(help="Address the Evidently UI binds.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the Evidently UI.")] = 8001,
) -> None:
    """Start the Evidently UI on MLOPS_HOME/monitoring/workspace, a dashboard per model."""
    from pipelines.cli import _prepare

    settings = _prepare()
    from monitoring.workspace import ensure_project, open_workspace, workspace_dir

    # Both projects exist before the first check, so the UI shows them from the start.
    workspace = open_workspace(settings)
    for name in (settings.churn_model_name, settings.fraud_model_name):
        ensure_project(workspace, name)
    executable = evidently_executable()
    if executable is None:
        typer.secho("error: the evidently CLI is not installed here", fg="red", err=True)
        raise typer.Exit(2)
    folder = workspace_dir(settings)
    typer.echo(f"Evidently UI on http://{host}:{port} (workspace {folder}; Ctrl-C stops)")
    # No usage reports from a local tool: the platform reaches nothing but loopback.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    command = [str(executable), "ui", "--workspace", str(folder), "--host", host]
    os.execv(executable, [*command, "--port", str(port)])


def bench_monitoring(
    rows: Annotated[int, typer.Option(min=1000, help="Rows of the reference and the window.")] = (
        100_000
    ),
    features: Annotated[int, typer.Option(min=2, help="Feature columns.")] = 30,
    compare_unsampled: Annotated[
        bool, typer.Option(help="Also time the drift on every row, and compare the verdicts.")
    ] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with one JSON line of the figures.")
    ] = False,
) -> None:
    """A monitoring check of ROWS served rows x FEATURES against a ROWS-row reference."""
    from pipelines.cli import _prepare

    _prepare()
    from pipelines.bench_monitoring import bench_monitoring as run_benchmark

    typer.secho(f"benchmark: monitoring check, {rows:,} rows x {features} features", bold=True)
    figures = run_benchmark(rows, features, compare_unsampled)
    typer.echo(
        f"  check             {figures['check_s']:.2f} s (drift on "
        f"{figures['drift_sample_rows']:,} sampled rows a side, data quality on all)"
    )
    typer.echo(f"  record            {figures['record_s']:.2f} s (workspace, HTML, latest)")
    typer.echo(
        f"  drifted           {len(figures['drifted_features'])} of {features} features "
        f"(shifted {len(figures['shifted_features'])}), score drift "
        f"{figures['prediction_drift_score']}"
    )
    if compare_unsampled:
        typer.echo(
            f"  unsampled drift   {figures['check_unsampled_s']:.2f} s, same verdicts: "
            f"{figures['same_verdicts_as_unsampled']}, largest score gap "
            f"{figures['largest_score_gap_vs_unsampled']}"
        )
        typer.echo(
            f"  DataDriftPreset   {figures['preset_unsampled_s']:.2f} s (drift alone, every row)"
        )
    typer.echo(f"  peak memory       {figures['peak_rss_mb']} MB")
    load = figures["load_avg_before"]
    quiet = "quiet" if load < 0.5 else "BUSY: figures are provisional"
    typer.echo(f"  machine           {figures['machine']}, load {load:.2f} ({quiet})")
    if as_json:
        typer.echo(json.dumps(figures, sort_keys=True, default=str))
