"""`mlops screenshots`: the README's pictures of the pages, taken from a trained home."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from cli.common import CaseStudy, JsonOption, fail, prepare


def screenshots(
    home: Annotated[
        Path | None,
        typer.Option(help="The home to show (default MLOPS_HOME); `make demo-no-serve` makes one."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder of the PNG files.")] = Path("docs/images"),
    model: Annotated[
        CaseStudy, typer.Option(help="Whose walkthrough, dashboard and MLflow run.")
    ] = CaseStudy("churn"),  # type: ignore[call-arg]
    first_port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Lowest port of the services (default: any free)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Picture the walkthrough page, the Evidently dashboard, the MLflow run and the API docs.

    Starts the API, MLflow and the Evidently UI on the home for the time it takes, and
    runs two monitoring checks on simulated traffic first when the dashboard has none.
    """
    if home is not None:
        os.environ["MLOPS_HOME"] = str(home.resolve())
    settings = prepare()  # before Prefect is imported: it reads its settings on import
    from stack.processes import StackError
    from stack.screenshots import NoTrainedHome, take_screenshots

    try:
        outcome = take_screenshots(
            settings, out.resolve(), model=model.value, first_port=first_port, log=typer.echo
        )
    except NoTrainedHome as error:
        fail(str(error))
    except StackError as error:
        fail(str(error), code=1)
    if as_json:
        typer.echo(json.dumps(outcome.to_dict(), sort_keys=True))
    else:
        typer.echo(
            f"{len([s for s in outcome.shots if s.path])} pictures in {outcome.seconds:.0f} s"
        )
    if any(shot.problem for shot in outcome.shots):
        raise typer.Exit(1)
