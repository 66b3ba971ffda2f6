"""`mlops config`: each setting, its current value, where it came from and what it does.

`mlops config --markdown` prints the settings reference (docs/settings.md) instead,
generated from the settings class alone; `make settings-doc` writes it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import load_settings
from mlops.settings_reference import current, grouped, markdown


def config(
    as_markdown: Annotated[
        bool,
        typer.Option(
            "--markdown",
            help="Print the settings reference as Markdown (docs/settings.md), from the "
            "defaults: the environment plays no part.",
        ),
    ] = False,
) -> None:
    """Each setting's variable, current value, source (environment or default) and meaning.

    Secrets and URL passwords are masked. An unknown MLOPS_* variable or a value that does
    not fit stops with one line naming it (exit 2).
    """
    if as_markdown:
        typer.echo(markdown(), nl=False)
        return
    rows = current(load_settings())
    width = max(len(row.setting.variable) for row in rows)
    for title, items in grouped(rows, key=lambda row: row.setting).items():
        typer.secho(f"# {title}", bold=True)
        for row in items:
            typer.echo(f"{row.setting.variable:<{width}}  {row.value}  ({row.source})")
            typer.echo(f"{'':<{width}}  {row.setting.description}")
        typer.echo()
