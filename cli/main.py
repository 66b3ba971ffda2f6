"""The root of the `mlops` command: it registers the command groups, and does nothing else.

Each command lives in the module named after it (`cli.pipeline`, `cli.bench`...), and the
modules share `cli.common`; none imports this one.
"""

from __future__ import annotations

from importlib import metadata
from typing import Annotated

import typer

from cli import (
    bench,
    config,
    demo,
    evaluate,
    models,
    monitor,
    pipeline,
    quality_bar,
    report,
    score,
    screenshots,
    serve,
    simulate,
    stack,
    stream,
    ui,
)

app = typer.Typer(
    help="Reference MLOps platform: pipelines, training, serving and monitoring.",
    no_args_is_help=True,
)


def _print_version(asked: bool) -> None:
    if asked:
        try:
            version = metadata.version("mlops-platform")
        except metadata.PackageNotFoundError:  # run from a checkout that is not installed
            version = "unknown (not installed)"
        typer.echo(f"mlops {version}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    pass


for command in (
    demo.demo,
    serve.serve,
    score.score,
    monitor.monitor,
    report.report,
    models.promote,
    models.rollback,
):
    app.command()(command)
app.command("quality-bar")(quality_bar.quality_bar)
app.command("config")(config.config)
app.command()(screenshots.screenshots)

for name, group in (
    ("pipeline", pipeline.pipeline_app),
    ("evaluate", evaluate.evaluate_app),
    ("simulate", simulate.simulate_app),
    ("bench", bench.bench_app),
    ("stack", stack.stack_app),
    ("stream", stream.stream_app),
    ("flows", stack.flows_app),
    ("ui", ui.ui_app),
):
    app.add_typer(group, name=name)
