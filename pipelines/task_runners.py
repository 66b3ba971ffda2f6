"""Where a flow's tasks run, chosen from the settings when the flow runs, not when it is defined.

`MLOPS_TASK_RUNNER=local` (the default) keeps Prefect's in-process thread pool;
`MLOPS_TASK_RUNNER=dask` gives the flow a `prefect_dask.DaskTaskRunner`, on the scheduler at
`MLOPS_DASK_ADDRESS`, or on a LocalCluster of `MLOPS_DASK_WORKERS` workers started for the
run and closed with it. Flows declare `task_runner=runner_from_settings()`; stages that
work on whole datasets (the fraud window features, XGBoost) ask `cluster_client()` for the
run's Dask client and partition their work on it, or run in-process when there is none.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from prefect.context import FlowRunContext
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from mlops.settings import Settings

if TYPE_CHECKING:
    from distributed import Client


def task_runner(settings: Settings) -> TaskRunner[Any]:
    """The task runner `settings` ask for: a thread pool, or Dask (an address or a LocalCluster)."""
    if settings.task_runner == "local":
        return ThreadPoolTaskRunner()
    from prefect_dask import DaskTaskRunner

    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster", cluster_kwargs=local_cluster_kwargs(settings)
    )


def local_cluster_kwargs(settings: Settings) -> dict[str, Any]:
    """`distributed.LocalCluster`'s arguments for the cluster started when no address is set."""
    cluster_kwargs: dict[str, Any] = {
        "n_workers": settings.dask_workers,
        # One thread per worker process: the window features and XGBoost are numpy code
        # that holds the GIL in places; processes, not threads, give the parallelism.
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": None,  # no web server (and no port clash) for a run's cluster
    }
    if settings.dask_memory_limit:
        cluster_kwargs["memory_limit"] = settings.dask_memory_limit
    return cluster_kwargs


class TaskRunnerFromSettings(ThreadPoolTaskRunner):
    """A flow's task runner, read from the settings each time the flow runs.

    Prefect enters `flow.task_runner.duplicate()` for every run, so the choice is made at
    run time (CLI, deployment or test alike), and importing a flow reads no settings.
    """

    def duplicate(self) -> Any:
        return task_runner(Settings())


def runner_from_settings() -> TaskRunner[Any]:
    """For `@flow(task_runner=...)`: the runner the settings name when the flow runs."""
    return TaskRunnerFromSettings()


def cluster_client() -> Client | None:
    """The Dask client of the running flow's task runner; None when it runs in-process."""
    context = FlowRunContext.get()
    # A DaskTaskRunner exists only if prefect_dask was imported: the test spares the
    # in-process run importing dask.
    if context is None or "prefect_dask" not in sys.modules:
        return None
    from prefect_dask import DaskTaskRunner

    runner = context.task_runner
    if not isinstance(runner, DaskTaskRunner):
        return None
    return runner.client  # started on first use, closed with the run
