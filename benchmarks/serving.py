"""Serving benchmark: our API against `mlflow models serve`, a naive FastAPI endpoint and
Seldon MLServer.

All serve the same registered churn version on loopback, one at a time, each in its own
process on a free port, and wrk drives each at concurrency 1 and 16 for a fixed time:

- ours: `POST /v1/churn/predict {"customer_id"}`: online feature read + ONNX;
- mlflow: `POST /invocations` with the customer's features as a one-row
  `dataframe_split` (MLflow's pyfunc answers `predict`, the class, for these flavours);
- naive: `POST /predict` with the features; the native model's `predict_proba` on a
  one-row DataFrame built per request (`benchmarks.naive_app`);
- ceiling: our route's request and response models in a FastAPI app that does no work
  (`benchmarks.ceiling_app`), given our bodies: what the HTTP stack alone serves.

Then the Open Inference Protocol ("V2") section: the same rows as one-row FP32 tensors,
the same body for every V2 server (the input named as each server's metadata says), to

- ours: `POST /v2/models/churn/infer`;
- mlserver: MLServer 1.7 serving the registered version's native model with its
  scikit-learn or xgboost runtime, from an environment of its own
  (`benchmarks.mlserver_peer`); its probabilities are checked against the native model's
  before it is timed. `--no-mlserver` leaves it out.

`mlflow models serve` speaks no V2: the section quotes its figures from the first part.

Every server cycles through the same real customers (the latest row of each in the
offline feature table, which is what the online store holds). wrk is closed-loop: each
connection sends its next request when the previous answer arrives, so latencies are
service times under that concurrency. Servers are stopped whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import machine
from mlops.case_studies import CHURN, FRAUD
from mlops.names import CHAMPION
from mlops.settings import Settings
from serving.open_inference import PROBABILITIES

CONCURRENCIES = (1, 16)
WARMUP_SECONDS = 2
READY_TIMEOUT_S = 180.0
SAMPLE_CUSTOMERS = 64
# The libraries the serving process must not load; the API imports only numpy +
# onnxruntime to score (see mlops/onnx_scorer.py), and reads the registry without MLflow
# (mlops/registry_reader.py). tests/serving/test_serving_imports.py forbids more.
TRAINING_LIBRARIES = ("sklearn", "xgboost", "prefect", "scipy", "torch", "mlflow", "dask")

WRK_INSTALL_HINT = "wrk is not installed: `apt-get install -y wrk` (Debian/Ubuntu)"

# wrk's Lua hooks: cycle through the request bodies; at the end, one JSON line of figures.
# The latency percentiles are microseconds; errors count non-2xx/3xx answers as "status".
_WRK_SCRIPT = """
local bodies = {{{bodies}}}
local headers = {{["Content-Type"] = "application/json"}}
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", nil, headers, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nWRK_JSON {{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"errors": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


class BenchmarkError(RuntimeError):
    """The benchmark cannot run or a server misbehaved; the message says why."""


@dataclass(frozen=True)
class Target:
    """One server to measure: how to start it, when it is ready, what to send it."""

    name: str
    command: list[str]
    ready_path: str
    request_path: str
    bodies: list[str]


# How close MLServer's probabilities must be to the native model's on the same FP32 rows:
# the same library computes both, so only float formatting can differ.
MLSERVER_TOLERANCE = 1e-6


def require_wrk() -> str:
    """The path of `wrk`; raises `BenchmarkError` with how to install it when it is missing."""
    path = shutil.which("wrk")
    if path is None:
        raise BenchmarkError(WRK_INSTALL_HINT)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    # `mlflow models serve --env-manager local` execs `uvicorn` from PATH: use the venv's.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env |= {
        "MLOPS_HOME": str(settings.home),
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        # The alias follower would poll the registry during the measurement.
        "MLOPS_MODEL_REFRESH_S": "0",
        **extra,
    }
    return env


@contextmanager
def running(
    command: Sequence[str], env: dict[str, str], port: int, ready_path: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server in its own process group; yield it once `ready_path` answers 200.

    The whole group is stopped on exit (mlflow starts uvicorn as a child), TERM first,
    then KILL after 10 s.
    """
    with log.open("wb") as sink:
        process = subprocess.Popen(
            list(command), env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_ready(process, f"http://127.0.0.1:{port}{ready_path}", log)
        yield process
    finally:
        _stop(process)


def wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Return once `url` answers 200; raises `BenchmarkError` when the server exits first or
    is not ready within READY_TIMEOUT_S (with the end of its `log`)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise BenchmarkError(f"server exited with {process.returncode}; log tail:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise BenchmarkError(f"{url} not ready after {READY_TIMEOUT_S:.0f} s (log: {log})")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


def post_json(url: str, body: str) -> Any:
    """POST the JSON text `body` to `url`; gives the decoded JSON answer."""
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def run_wrk(
    wrk: str,
    url: str,
    bodies: list[str],
    connections: int,
    seconds: float,
    workdir: Path,
    *,
    tolerate_errors: bool = False,
) -> dict[str, float]:
    """Drive `url` for `seconds` with `connections` connections; p50/p99 in ms and req/s.

    A failed answer is a `BenchmarkError`, unless `tolerate_errors`: then they are counted
    (`errors`, e.g. 429s of a loaded machine's load shedding) and `rps` counts the others.
    """
    script = workdir / "bench.lua"
    script.write_text(_WRK_SCRIPT.format(bodies=", ".join(_lua_string(b) for b in bodies)))
    command = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("WRK_JSON ")]
    if result.returncode != 0 or not lines:
        raise BenchmarkError(f"wrk failed ({result.returncode}): {result.stderr or result.stdout}")
    raw = json.loads(lines[-1].removeprefix("WRK_JSON "))
    if raw["errors"] and not tolerate_errors:
        raise BenchmarkError(f"{url}: {raw['errors']} of {raw['requests']} requests failed")
    figures = {
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "rps": (raw["requests"] - raw["errors"]) / (raw["duration_us"] / 1e6),
        "requests": raw["requests"],
    }
    if tolerate_errors:
        figures["errors"] = raw["errors"]
    return figures


def _lua_string(text: str) -> str:
    # JSON bodies hold no newlines; a Lua long bracket needs no escaping.
    return f"[==[{text}]==]"


def vm_rss_mb(pid: int) -> float:
    """Resident memory of a process now, from /proc/<pid>/status (VmRSS, KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise BenchmarkError(f"no VmRSS for process {pid}")


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (a server's workers), summed.

    Shared pages count once per process, so this is an upper bound for a tree."""
    total = 0.0
    for member in process_tree(pid):
        with suppress(OSError, BenchmarkError):  # exited in between, or a zombie
            total += vm_rss_mb(member)
    return round(total, 1)


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants, from /proc/<pid>/task/<tid>/children."""
    tree, queue = [], [pid]
    while queue:
        current = queue.pop()
        tree.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with suppress(OSError):  # the task ended meanwhile
                queue.extend(int(c) for c in (task / "children").read_text().split())
    return tree


def mapped_libraries(pid: int, packages: Sequence[str] = TRAINING_LIBRARIES) -> list[str]:
    """The packages in `packages` with a shared object mapped into process `pid`.

    Compiled extensions (sklearn's, xgboost's libxgboost.so, scipy's) must be mapped to be
    used, so this sees what the live server really loaded, without attaching to it.
    Pure-Python packages (prefect) leave no trace here: see `serving_imports`.
    """
    maps = Path(f"/proc/{pid}/maps").read_text()
    paths = {line.split()[-1] for line in maps.splitlines() if ".so" in line}
    return sorted(p for p in packages if any(f"/site-packages/{p}/" in path for path in paths))


_IMPORTS_PROBE = """
import json, sys
from fastapi.testclient import TestClient
from mlops.settings import Settings
from serving.app import create_app
with TestClient(create_app(Settings())) as client:
    assert client.get("/health/ready").status_code == 200, "not ready"
top = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps({p: p in top for p in %r}))
"""


def serving_imports(env: dict[str, str], packages: Sequence[str] = TRAINING_LIBRARIES) -> Any:
    """Which of `packages` the API imports: a one-off process builds the app as `mlops serve`
    does, runs its startup (model load, feature store) and lists `sys.modules`."""
    result = subprocess.run(
        [sys.executable, "-c", _IMPORTS_PROBE % (tuple(packages),)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise BenchmarkError(f"import probe failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def sample_customers(settings: Settings, feature_names: list[str]) -> tuple[list[str], Any]:
    """Real customer ids and their latest features (what the online store serves)."""
    import pandas as pd

    from features.churn_frames import ENTITY_KEY
    from features.feature_repo.churn import CHURN_FEATURES_FILE

    table = pd.read_parquet(settings.features_dir / CHURN_FEATURES_FILE)
    latest = table.sort_values("event_timestamp").drop_duplicates(ENTITY_KEY, keep="last")
    sample = latest.sample(min(SAMPLE_CUSTOMERS, len(latest)), random_state=0)
    return [str(i) for i in sample[ENTITY_KEY]], sample[feature_names].astype(float)


def _targets(
    settings: Settings, feature_names: list[str], ports: dict[str, int], ids: list[str], rows: Any
) -> list[Target]:
    model_uri = f"models:/{settings.churn_model_name}@{CHAMPION}"
    features = [dict(zip(feature_names, map(float, r), strict=True)) for r in rows.to_numpy()]
    ours = Target(
        "ours",
        [sys.executable, "-m", "cli", "serve", "--port", str(ports["ours"])],
        "/health/ready",
        "/v1/churn/predict",
        [json.dumps({"customer_id": i}) for i in ids],
    )
    ceiling = Target(
        "ceiling",
        [sys.executable, "-m", "benchmarks.ceiling_app", str(ports["ceiling"])],
        "/health",
        CHURN.score_route,
        ours.bodies,
    )
    return [ours, *_peer_targets(model_uri, feature_names, features, ports), ceiling]


def has_champion(settings: Settings, name: str) -> bool:
    """True when the registered model `name` has a champion alias."""
    from mlflow import MlflowClient

    from mlops.registry import champion_version

    return champion_version(MlflowClient(tracking_uri=settings.tracking_uri), name) is not None


def bench_serving(
    settings: Settings, seconds: float, log: Callable[[str], None] = print, mlserver: bool = True
) -> dict[str, Any]:
    """Measure the three servers, then our API's memory and imports, then the V2 section
    (MLServer only when `mlserver`); return every figure."""
    from mlops.model_bundle import download_bundle

    wrk = require_wrk()
    if not has_champion(settings, settings.churn_model_name):
        raise BenchmarkError(f"{settings.home} has no {settings.churn_model_name}@champion")
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    bundle = download_bundle(
        settings.tracking_uri, settings.churn_model_name, settings.models_dir, alias=CHAMPION
    )
    names = list(bundle.meta.feature_names)
    figures: dict[str, Any] = {
        "benchmark": "serving churn",
        "model": f"{bundle.name} v{bundle.version} ({bundle.meta.candidate})",
        "seconds_per_level": seconds,
        "load_avg_before": os.getloadavg()[0],
        "servers": {},
    }
    ports = {name: free_port() for name in ("ours", "mlflow", "naive", "ceiling", "ours_both")}
    ids, rows = sample_customers(settings, names)
    with tempfile.TemporaryDirectory(prefix="mlops-bench-serving-") as scratch:
        workdir = Path(scratch)
        for target in _targets(settings, names, ports, ids, rows):
            port = ports[target.name]
            log(f"  {target.name}: starting on 127.0.0.1:{port}")
            env = _server_env(settings, MLOPS_SERVED_MODELS=CHURN.name)
            with running(
                target.command, env, port, target.ready_path, workdir / f"{target.name}.log"
            ) as process:
                url = f"http://127.0.0.1:{port}{target.request_path}"
                first = post_json(url, target.bodies[0])
                levels = measure(wrk, url, target.bodies, seconds, workdir, log, target.name)
                result: dict[str, Any] = {**levels, "first_response": first}
                if target.name == "ours":
                    result["rss_mb_after_load"] = vm_rss_mb(process.pid)
                    result["native_libraries_mapped"] = mapped_libraries(process.pid)
                    result["models_loaded"] = models_loaded(port)
                else:
                    # mlflow's launcher serves from a uvicorn child: the whole tree.
                    result["rss_mb_after_load"] = tree_rss_mb(process.pid)
                figures["servers"][target.name] = result
        figures["ours_both_models"] = _both_models(settings, ports["ours_both"], wrk, workdir, log)
        figures["fraud"] = bench_fraud(settings, seconds, wrk, workdir, log)
        figures["serving_imports"] = serving_imports(
            _server_env(settings, MLOPS_SERVED_MODELS=CHURN.name)
        )
        figures["v2"] = _bench_v2_models(
            settings, bundle, rows, wrk, seconds, workdir, log, mlserver
        )
        figures["v2"][CHURN.name]["servers"]["mlflow"] = _quoted_mlflow(
            figures["servers"]["mlflow"]
        )
    servers = figures["servers"]
    # Same customer, same registered version: ONNX must agree with the native model.
    figures["probability_gap_ours_naive"] = abs(
        servers["ours"]["first_response"]["churn_probability"]
        - servers["naive"]["first_response"]["probability"]
    )
    figures["ratios"] = ratios(servers)
    figures["machine"] = machine()
    return figures


# Payments made for the fraud section, per second of each level: more than any server here
# answers, so no payment is sent twice (`payments_repeated` says if one was).
FRAUD_PAYMENTS_PER_SECOND = 4_000


def bench_fraud(
    settings: Settings, seconds: float, wrk: str, workdir: Path, log: Callable[[str], None]
) -> Any:
    """The fraud section: `POST /v1/fraud/score` with distinct payments, beside the naive
    endpoint and `mlflow models serve` given the features.

    Ours scores the next payments of the home's simulated world (`sources.fraud_world`:
    the cards and terminals the pipeline published, past its last payment), each sent once:
    every one reads its card's and terminal's windows and is appended to them. It serves a
    copy of the home's online store in a scratch home, so the home's windows stay as they
    were (an embedded SQLite store only; a network store is the user's, left alone). The
    peers get real window features, the rows of the champion's parity sample, and do no
    window work: they are what a model server without online features costs.
    """
    from mlops.model_bundle import download_bundle
    from sources import fraud_world

    if not has_champion(settings, settings.fraud_model_name):
        return "no fraud champion in this home"
    if settings.online_store != "sqlite":
        return f"skipped: the {settings.online_store} online store is not copied to score into"
    bundle = download_bundle(
        settings.tracking_uri, settings.fraud_model_name, settings.models_dir, alias=CHAMPION
    )
    names = list(bundle.meta.feature_names)
    per_level = int(FRAUD_PAYMENTS_PER_SECOND * max(seconds, WARMUP_SECONDS)) + 1
    history = fraud_world.fraud_history(settings, None)
    payments = fraud_world.fraud_payments(history, 3 * per_level, "baseline", settings.seed)
    bodies = [
        json.dumps(
            {
                "transaction_id": int(p.TRANSACTION_ID),
                "customer_id": int(p.CUSTOMER_ID),
                "terminal_id": int(p.TERMINAL_ID),
                "amount": float(p.TX_AMOUNT),
                "tx_datetime": p.TX_DATETIME.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
        for p in payments.itertuples()
    ]
    rows = bundle.parity_sample()[0][:SAMPLE_CUSTOMERS].astype(float)
    features = [dict(zip(names, map(float, r), strict=True)) for r in rows]
    model_uri = f"models:/{settings.fraud_model_name}@{CHAMPION}"
    ports = {name: free_port() for name in ("ours", "mlflow", "naive")}
    scratch = workdir / "fraud_home"
    shutil.copytree(settings.feast_dir, scratch / "feast")
    (scratch / "features").mkdir()
    section: dict[str, Any] = {
        "model": f"{bundle.name} v{bundle.version} ({bundle.meta.candidate})",
        "payments": len(bodies),
        "servers": {},
    }
    for target in _peer_targets(model_uri, names, features, ports):
        port = ports[target.name]
        log(f"  fraud {target.name}: starting on 127.0.0.1:{port}")
        env = _server_env(settings, MLOPS_SERVED_MODELS=FRAUD.name)
        with running(
            target.command, env, port, target.ready_path, workdir / f"fraud_{target.name}.log"
        ) as process:
            url = f"http://127.0.0.1:{port}{target.request_path}"
            levels = measure(wrk, url, target.bodies, seconds, workdir, log, f"fraud {target.name}")
            figures: dict[str, Any] = {**levels, "first_response": post_json(url, target.bodies[0])}
            figures["rss_mb_after_load"] = tree_rss_mb(process.pid)
            section["servers"][target.name] = figures
    port = ports["ours"]
    command = [sys.executable, "-m", "cli", "serve", "--port", str(port)]
    env = _server_env(settings, MLOPS_SERVED_MODELS=FRAUD.name, MLOPS_HOME=str(scratch))
    log(f"  fraud ours: starting on 127.0.0.1:{port} (a copy of the online store)")
    with running(command, env, port, "/health/ready", workdir / "fraud_ours.log") as process:
        url = f"http://127.0.0.1:{port}{FRAUD.score_route}"
        # Each level its own payments, in time order: none is sent twice.
        warm, c1, c16 = (bodies[i * per_level : (i + 1) * per_level] for i in range(3))
        run_wrk(wrk, url, warm, 4, WARMUP_SECONDS, workdir, tolerate_errors=True)
        ours: dict[str, Any] = {}
        for connections, sent in zip(CONCURRENCIES, (c1, c16), strict=True):
            # A payment refused (429: the event loop late on a loaded machine) is counted:
            # its `errors`; `rps` counts the scored ones.
            level = run_wrk(wrk, url, sent, connections, seconds, workdir, tolerate_errors=True)
            level["payments_repeated"] = level["requests"] > len(sent)
            ours[f"c{connections}"] = level
            log(f"  fraud ours: c={connections} {_describe(level)}")
        ours["rss_mb_after_load"] = vm_rss_mb(process.pid)
        section["servers"] = {"ours": ours, **section["servers"]}
    section["ratios"] = ratios(section["servers"])
    return section


def _peer_targets(
    model_uri: str, names: list[str], features: list[dict[str, float]], ports: dict[str, int]
) -> list[Target]:
    """`mlflow models serve` and the naive endpoint on `model_uri`, given `features`."""
    python = sys.executable
    return [
        Target(
            "mlflow",
            [
                python,
                "-m",
                "mlflow",
                "models",
                "serve",
                "-m",
                model_uri,
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(ports["mlflow"]),
            ],
            "/ping",
            "/invocations",
            [
                json.dumps({"dataframe_split": {"columns": names, "data": [list(f.values())]}})
                for f in features
            ],
        ),
        Target(
            "naive",
            [python, "-m", "benchmarks.naive_app", model_uri, str(ports["naive"])],
            "/health",
            "/predict",
            [json.dumps({"features": f}) for f in features],
        ),
    ]


def measure(
    wrk: str,
    url: str,
    bodies: list[str],
    seconds: float,
    workdir: Path,
    log: Callable[[str], None],
    label: str,
) -> dict[str, Any]:
    """A short warm-up at 4 connections, then each of CONCURRENCIES for `seconds`."""
    run_wrk(wrk, url, bodies, 4, WARMUP_SECONDS, workdir)
    levels = {}
    for connections in CONCURRENCIES:
        level = run_wrk(wrk, url, bodies, connections, seconds, workdir)
        levels[f"c{connections}"] = level
        log(f"  {label}: c={connections} {_describe(level)}")
    return levels


def _bench_v2_models(
    settings: Settings,
    churn: Any,
    churn_rows: Any,
    wrk: str,
    seconds: float,
    workdir: Path,
    log: Callable[[str], None],
    mlserver: bool,
) -> dict[str, Any]:
    """The V2 section of churn (the customers of the first part) and of fraud when the
    home has its champion (the payments of its bundle's parity sample: real window
    features, and V2 infer on a tensor appends nothing to the online windows)."""
    from mlops.model_bundle import download_bundle

    sections: dict[str, Any] = {
        CHURN.name: bench_v2(
            settings, CHURN.name, churn, churn_rows.to_numpy(), wrk, seconds, workdir, log, mlserver
        )
    }
    if not has_champion(settings, settings.fraud_model_name):
        sections[FRAUD.name] = "no fraud champion in this home"
        return sections
    fraud = download_bundle(
        settings.tracking_uri, settings.fraud_model_name, settings.models_dir, alias=CHAMPION
    )
    fraud_rows = fraud.parity_sample()[0][:SAMPLE_CUSTOMERS]
    sections[FRAUD.name] = bench_v2(
        settings, FRAUD.name, fraud, fraud_rows, wrk, seconds, workdir, log, mlserver
    )
    return sections


def bench_v2(
    settings: Settings,
    model: str,
    bundle: Any,
    rows: Any,
    wrk: str,
    seconds: float,
    workdir: Path,
    log: Callable[[str], None],
    mlserver: bool = True,
) -> dict[str, Any]:
    """The Open Inference Protocol section for the case study `model` (its name in the
    URLs): our V2 endpoint and MLServer, on the same `rows` of `bundle`'s features.

    A server that cannot run here (our V2 routes absent, MLServer not installable) is a
    string saying why in place of its figures; one that answers wrongly is an error.
    """
    from mlops.model_bundle import load_native_model

    native = load_native_model(settings.tracking_uri, bundle.name, bundle.version)
    rows32 = np.ascontiguousarray(rows, dtype=np.float32)
    expected = native.predict_proba(rows32)[:, 1]
    section: dict[str, Any] = {
        "model": f"{bundle.name} v{bundle.version} ({type(native).__name__})",
        "rows": len(rows32),
        "servers": {
            "ours": _ours_v2(settings, model, rows32, expected, wrk, seconds, workdir, log),
            "mlserver": (
                _mlserver_v2(model, bundle, native, rows32, expected, wrk, seconds, workdir, log)
                if mlserver
                else "skipped (--no-mlserver)"
            ),
        },
    }
    section["ratios"] = v2_ratios(section["servers"])
    return section


def v2_body(input_name: str, rows: Any, extra: dict[str, Any] | None = None) -> str:
    """A V2 infer body: the 2-D `rows` as one FP32 tensor named `input_name`, row-major,
    plus the `extra` fields of the request."""
    tensor = {
        "name": input_name,
        "datatype": "FP32",
        "shape": list(rows.shape),
        "data": [float(x) for x in rows.ravel()],
    }
    return json.dumps({"inputs": [tensor], **(extra or {})})


def v2_bodies(input_name: str, rows: Any, extra: dict[str, Any] | None = None) -> list[str]:
    """One V2 infer body per row: a [1, n] FP32 tensor each."""
    return [v2_body(input_name, rows[i : i + 1], extra) for i in range(len(rows))]


def v2_input_name(base_url: str, model: str) -> str | None:
    """The input tensor's name in `GET /v2/models/{model}`; None when the server has no
    such route (or the model)."""
    try:
        with urllib.request.urlopen(f"{base_url}/v2/models/{model}", timeout=5) as response:
            metadata = json.loads(response.read())
    except OSError:  # urllib's HTTPError (404) included
        return None
    inputs = metadata.get("inputs") or []
    if len(inputs) != 1:
        raise BenchmarkError(f"{base_url}/v2/models/{model}: expected one input, got {inputs}")
    return str(inputs[0]["name"])


def _ours_v2(
    settings: Settings,
    model: str,
    rows: Any,
    expected: Any,
    wrk: str,
    seconds: float,
    workdir: Path,
    log: Callable[[str], None],
) -> Any:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "cli", "serve", "--port", str(port)]
    env = _server_env(settings, MLOPS_SERVED_MODELS=model)
    log(f"  ours V2 {model}: starting on 127.0.0.1:{port}")
    with running(command, env, port, "/health/ready", workdir / f"ours_v2_{model}.log") as process:
        input_name = v2_input_name(base, model)
        if input_name is None:
            raise BenchmarkError(f"{base}/v2/models/{model}: our API does not answer")
        url = f"{base}/v2/models/{model}/infer"
        bodies = v2_bodies(input_name, rows)
        first = post_json(url, bodies[0])
        result: dict[str, Any] = {
            **measure(wrk, url, bodies, seconds, workdir, log, f"ours V2 {model}"),
            "first_response": first,
            "input_name": input_name,
            "probability_gap_vs_native": _ours_gap(first, float(expected[0])),
            "rss_mb_after_load": tree_rss_mb(process.pid),
        }
        return result


def _ours_gap(response: dict[str, Any], expected: float) -> float:
    """|probability - native| for one row, from our `probabilities` output."""
    [output] = [o for o in response["outputs"] if o["name"] == PROBABILITIES]
    return abs(float(output["data"][-1]) - expected)


def _mlserver_v2(
    model: str,
    bundle: Any,
    native: Any,
    rows: Any,
    expected: Any,
    wrk: str,
    seconds: float,
    workdir: Path,
    log: Callable[[str], None],
) -> Any:
    from benchmarks import mlserver_peer

    if (foreign := mlserver_peer.foreign_class(native)) is not None:
        log(f"  mlserver {model}: unavailable (the native model is a {foreign})")
        return f"unavailable: the native model is a {foreign}, not scikit-learn's or xgboost's"
    log(
        f"  mlserver: environment of {mlserver_peer.MLSERVER_VERSION} "
        f"under {mlserver_peer.cache_root()}"
    )
    try:
        env = mlserver_peer.ensure_env()
    except mlserver_peer.MLServerUnavailable as error:
        log(f"  mlserver: unavailable ({error})")
        return f"unavailable: {error}"
    ports = {name: free_port() for name in ("http", "grpc", "metrics")}
    repository = mlserver_peer.write_model_repository(
        workdir / f"mlserver_{model}", native, model, bundle.version, rows.shape[1], ports
    )
    base = f"http://127.0.0.1:{ports['http']}"
    log(f"  mlserver {model}: starting on 127.0.0.1:{ports['http']} ({repository.runtime})")
    log_file = workdir / f"mlserver_{model}.log"
    with mlserver_running(
        env.executable, repository.folder, ports["http"], [model], log_file
    ) as process:
        input_name, gap = check_mlserver(base, model, rows, expected, repository.request_extra)
        url = f"{base}/v2/models/{model}/infer"
        bodies = v2_bodies(input_name, rows, repository.request_extra)
        return {
            **measure(wrk, url, bodies, seconds, workdir, log, f"mlserver {model}"),
            "first_response": post_json(url, bodies[0]),
            "input_name": input_name,
            "runtime": repository.runtime,
            "probability_gap_vs_native": gap,
            "rss_mb_after_load": tree_rss_mb(process.pid),
            "environment": env.describe(),
        }


@contextmanager
def mlserver_running(
    executable: Path, folder: Path, http_port: int, models: Sequence[str], log_file: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """MLServer serving the model repository `folder`, once each of `models` is ready."""
    # Nothing of ours or of an MLServer configured elsewhere: its settings are the files.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_", "MLSERVER"))
    }
    command = [str(executable), "start", str(folder)]
    first, *others = models
    with running(command, env, http_port, f"/v2/models/{first}/ready", log_file) as process:
        for model in others:
            wait_ready(process, f"http://127.0.0.1:{http_port}/v2/models/{model}/ready", log_file)
        yield process


def check_mlserver(
    base_url: str, model: str, rows: Any, expected: Any, request_extra: dict[str, Any]
) -> tuple[str, float]:
    """Correct before fast: every row of `rows` in one request to MLServer's `model`,
    against the native model's positive probabilities `expected`. Returns the input name
    its metadata gives and the largest gap; `BenchmarkError` beyond MLSERVER_TOLERANCE."""
    from benchmarks.mlserver_peer import positive_probabilities

    input_name = v2_input_name(base_url, model)
    if input_name is None:
        raise BenchmarkError(f"MLServer does not answer GET /v2/models/{model}")
    body = v2_body(input_name, rows, request_extra)
    answered = positive_probabilities(post_json(f"{base_url}/v2/models/{model}/infer", body))
    gap = float(np.max(np.abs(np.asarray(answered) - expected)))
    if not gap <= MLSERVER_TOLERANCE:
        raise BenchmarkError(
            f"MLServer's {model} differs from the native model by {gap:.2e} "
            f"(tolerance {MLSERVER_TOLERANCE:.0e})"
        )
    return input_name, gap


def _quoted_mlflow(figures: dict[str, Any]) -> dict[str, Any]:
    """mlflow's figures of the first part, for the V2 table: it has no V2 route."""
    keep = ("c1", "c16", "rss_mb_after_load")
    return {**{k: figures[k] for k in keep}, "protocol": "/invocations dataframe_split (no V2)"}


def v2_ratios(servers: dict[str, Any]) -> dict[str, float]:
    """Ours over MLServer (req/s at c=16, p50 at c=1), when both were measured."""
    ours, peer = servers.get("ours"), servers.get("mlserver")
    if not isinstance(ours, dict) or not isinstance(peer, dict):
        return {}
    return {
        "rps_c16_ours_over_mlserver": round(ours["c16"]["rps"] / peer["c16"]["rps"], 2),
        "p50_c1_ours_over_mlserver": round(ours["c1"]["p50_ms"] / peer["c1"]["p50_ms"], 3),
    }


def _both_models(
    settings: Settings, port: int, wrk: str, workdir: Path, log: Callable[[str], None]
) -> Any:
    """RSS of one API process serving churn and fraud, after a short churn load.

    No fraud request is sent: scoring a transaction appends it to the online windows, and
    this may be a user's home.
    """
    if not has_champion(settings, settings.fraud_model_name):
        return "no fraud champion in this home"
    env = _server_env(settings, MLOPS_SERVED_MODELS=f"{CHURN.name},{FRAUD.name}")
    command = [sys.executable, "-m", "cli", "serve", "--port", str(port)]
    log(f"  ours (churn + fraud): starting on 127.0.0.1:{port}")
    with running(command, env, port, "/health/ready", workdir / "ours_both.log") as process:
        ids, _ = sample_customers(settings, [])
        bodies = [json.dumps({"customer_id": i}) for i in ids]
        run_wrk(
            wrk, f"http://127.0.0.1:{port}/v1/churn/predict", bodies, 4, WARMUP_SECONDS, workdir
        )
        return {
            "rss_mb_after_load": vm_rss_mb(process.pid),
            "models_loaded": models_loaded(port),
            "native_libraries_mapped": mapped_libraries(process.pid),
        }


def models_loaded(port: int) -> list[str]:
    """The models our API process holds: those of MLOPS_SERVED_MODELS."""
    loaded = []
    for name in ("churn", "fraud"):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/{name}/model", timeout=5):
                loaded.append(name)
        except OSError:
            pass
    return loaded


def ratios(servers: dict[str, Any]) -> dict[str, float]:
    """Ours over each other server: req/s at c=16 (>1: ours serves more), p50 at c=1
    (<1: ours answers faster)."""
    ours = servers["ours"]
    out: dict[str, float] = {}
    for name, other in servers.items():
        if name == "ours":
            continue
        out[f"rps_c16_ours_over_{name}"] = round(ours["c16"]["rps"] / other["c16"]["rps"], 2)
        out[f"p50_c1_ours_over_{name}"] = round(ours["c1"]["p50_ms"] / other["c1"]["p50_ms"], 3)
    return out


def _describe(level: dict[str, float]) -> str:
    return f"p50 {level['p50_ms']:.2f} ms, p99 {level['p99_ms']:.2f} ms, {level['rps']:,.0f} req/s"
