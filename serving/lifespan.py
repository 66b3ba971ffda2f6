"""The API's lifespan: build the collaborators, start them in named steps, stop them in reverse.

Start: load the models, open the stores, start the prediction log, tune the runtime
(garbage collector and GIL), follow the aliases. Shutdown undoes them from the last: the
background tasks stop, the access log and the switch interval are restored, and the
prediction log writes what is queued, whether the app built the log or was given it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from mlops.case_studies import CASE_STUDIES
from mlops.settings import Settings
from serving.collaborators import Collaborators, Given, Instruments, build_collaborators
from serving.metrics import Metrics
from serving.model_holder import ModelHolder

logger = logging.getLogger("serving")

GIL_SWITCH_INTERVAL_S = 0.0005

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def serving_lifespan(settings: Settings, given: Given, instruments: Instruments) -> Lifespan:
    """The lifespan of an app built from `settings`, with `given` collaborators, observed by
    `instruments`; each start builds its collaborators anew and publishes them on the app."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        collaborators = build_collaborators(settings, given, instruments.metrics)
        load_models(collaborators, settings)
        await open_stores(collaborators, settings)
        start_log(collaborators, settings, instruments.metrics)
        publish(app, collaborators)
        switch_interval = tune_runtime()
        background = [
            *follow_aliases(collaborators, settings),
            asyncio.create_task(instruments.access.flush_periodically()),
        ]
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            instruments.access.flush()
            restore_runtime(switch_interval)
            await stop_log(collaborators, instruments.metrics)

    return lifespan


def _served_holders(collaborators: Collaborators, settings: Settings) -> list[ModelHolder]:
    """The champions' holders of the models this process serves, in the registry's order."""
    return [collaborators.models[name] for name in CASE_STUDIES if name in settings.served_models]


def load_models(collaborators: Collaborators, settings: Settings) -> None:
    """Load each served champion not loaded yet, and each challenger of an online experiment.

    Only the models this process serves: a churn-only replica holds no fraud session. A
    model that fails to load is reported by readiness, it does not stop the start.
    """
    for holder in _served_holders(collaborators, settings):
        if not holder.ready:
            holder.load_from_registry(settings)
    for arm in collaborators.challengers.values():
        if arm is not None:
            arm.holder.load_from_registry(settings)  # none yet: the champion only


async def open_stores(collaborators: Collaborators, settings: Settings) -> None:
    """Connect the online store the app built, its reads bounded (given clients are as given)."""
    if collaborators.store is not None:
        from features.store import bound_serving_reads

        await bound_serving_reads(collaborators.store, settings)


def start_log(collaborators: Collaborators, settings: Settings, metrics: Metrics) -> None:
    """Start the prediction log's writer; report its state and the served models' at each
    scrape."""
    collaborators.log.start()
    metrics.watch(collaborators.log, _served_holders(collaborators, settings))


async def stop_log(collaborators: Collaborators, metrics: Metrics) -> None:
    """Write what the prediction log has queued, close it, and stop reporting its state."""
    # Off the event loop: writing the last batch may take a moment.
    await asyncio.to_thread(collaborators.log.close)
    metrics.unwatch()


def publish(app: FastAPI, collaborators: Collaborators) -> None:
    """Put the collaborators in the app state, where the routes' dependencies find them."""
    app.state.collaborators = collaborators
    # The scoring routes read their predictor straight from the state: one lookup a request.
    app.state.churn_predictor = collaborators.churn_predictor
    app.state.fraud_predictor = collaborators.fraud_predictor


def tune_runtime() -> float:
    """Freeze what is loaded out of the cyclic collector's way and shorten the GIL switch
    interval; gives back the previous interval, for `restore_runtime`."""
    # Everything loaded so far (Feast, pandas, the registry, the ONNX sessions) lives
    # as long as the process: frozen, the cyclic collector's full collections, which
    # pause every request, no longer walk those objects.
    gc.freeze()
    # The prediction log's writer thread takes the GIL for a few ms a second; a request
    # on the event loop waits for it up to the switch interval (5 ms by default) each
    # time. At 0.5 ms the p99 at one connection fell from 6-8 ms to 3.2-3.7 ms here.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    return switch_interval


def restore_runtime(switch_interval: float) -> None:
    """Put back the GIL switch interval `tune_runtime` replaced."""
    sys.setswitchinterval(switch_interval)


def follow_aliases(collaborators: Collaborators, settings: Settings) -> list[asyncio.Task[None]]:
    """A task per served champion and challenger polling its alias (none when refresh is 0)."""
    if settings.model_refresh_s <= 0:
        return []
    followed = [
        *_served_holders(collaborators, settings),
        *(arm.holder for arm in collaborators.challengers.values() if arm is not None),
    ]
    return [asyncio.create_task(_follow_alias(holder, settings)) for holder in followed]


async def _follow_alias(holder: ModelHolder, settings: Settings) -> None:
    """Poll the alias; a new champion is loaded beside the old one and swapped in.

    The holder logs and keeps its own failures; whatever else goes wrong in one poll is
    logged and the next poll comes: a bad version must not stop later promotions.
    """
    while True:
        await asyncio.sleep(settings.model_refresh_s)
        try:
            # Downloading and checking a model is blocking work: keep it off the event loop.
            if await asyncio.to_thread(holder.refresh, settings):
                logger.info("now serving %s v%s", holder.name, holder.loaded_version)
        except Exception:
            logger.exception("following %s@%s failed; polling on", holder.name, holder.alias)
