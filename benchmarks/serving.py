"""Serving benchmark: our API against `mlflow models serve` and a naive FastAPI endpoint.

All three serve the same registered churn version on loopback, one at a time, each in
its own process on a free port, and wrk drives each at concurrency 1 and 16 for a fixed
time:

- ours: `POST /v1/churn/predict {"customer_id"}`: online feature read + ONNX;
- mlflow: `POST /invocations` with the customer's features as a one-row
  `dataframe_split` (MLflow's pyfunc answers `predict`, the class, for these flavours);
- naive: `POST /predict` with the features; the native model's `predict_proba` on a
  one-row DataFrame built per request (`benchmarks.naive_app`).

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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.machine import machine
from mlops.case_studies import CHURN, FRAUD
from mlops.names import CHAMPION
from mlops.settings import Settings

CONCURRENCIES = (1, 16)
WARMUP_SECONDS = 2
READY_TIMEOUT_S = 180.0
SAMPLE_CUSTOMERS = 64
# The native libraries the serving process must not load; the API imports only
# numpy + onnxruntime to score (see mlops/onnx_scorer.py).
TRAINING_LIBRARIES = ("sklearn", "xgboost", "prefect", "scipy", "torch")

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
    wrk: str, url: str, bodies: list[str], connections: int, seconds: float, workdir: Path
) -> dict[str, float]:
    """Drive `url` for `seconds` with `connections` connections; p50/p99 in ms and req/s."""
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
    if raw["errors"]:
        raise BenchmarkError(f"{url}: {raw['errors']} of {raw['requests']} requests failed")
    return {
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "requests": raw["requests"],
    }


def _lua_string(text: str) -> str:
    # JSON bodies hold no newlines; a Lua long bracket needs no escaping.
    return f"[==[{text}]==]"


def vm_rss_mb(pid: int) -> float:
    """Resident memory of a process now, from /proc/<pid>/status (VmRSS, KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise BenchmarkError(f"no VmRSS for process {pid}")


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


def _targets(settings: Settings, feature_names: list[str], ports: dict[str, int]) -> list[Target]:
    ids, rows = sample_customers(settings, feature_names)
    python, model_uri = sys.executable, f"models:/{settings.churn_model_name}@{CHAMPION}"
    features = [dict(zip(feature_names, map(float, r), strict=True)) for r in rows.to_numpy()]
    return [
        Target(
            "ours",
            [python, "-m", "cli", "serve", "--port", str(ports["ours"])],
            "/health/ready",
            "/v1/churn/predict",
            [json.dumps({"customer_id": i}) for i in ids],
        ),
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
                json.dumps(
                    {"dataframe_split": {"columns": feature_names, "data": [list(f.values())]}}
                )
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


def has_champion(settings: Settings, name: str) -> bool:
    """True when the registered model `name` has a champion alias."""
    from mlflow import MlflowClient

    from mlops.registry import champion_version

    return champion_version(MlflowClient(tracking_uri=settings.tracking_uri), name) is not None


def bench_serving(
    settings: Settings, seconds: float, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Measure the three servers, then our API's memory and imports; return every figure."""
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
    ports = {name: free_port() for name in ("ours", "mlflow", "naive", "ours_both")}
    with tempfile.TemporaryDirectory(prefix="mlops-bench-serving-") as scratch:
        workdir = Path(scratch)
        for target in _targets(settings, names, ports):
            port = ports[target.name]
            log(f"  {target.name}: starting on 127.0.0.1:{port}")
            env = _server_env(settings, MLOPS_SERVED_MODELS=CHURN.name)
            with running(
                target.command, env, port, target.ready_path, workdir / f"{target.name}.log"
            ) as process:
                url = f"http://127.0.0.1:{port}{target.request_path}"
                first = post_json(url, target.bodies[0])
                run_wrk(wrk, url, target.bodies, 4, WARMUP_SECONDS, workdir)
                levels = {}
                for connections in CONCURRENCIES:
                    levels[f"c{connections}"] = run_wrk(
                        wrk, url, target.bodies, connections, seconds, workdir
                    )
                    log(f"  {target.name}: c={connections} {_describe(levels[f'c{connections}'])}")
                result: dict[str, Any] = {**levels, "first_response": first}
                if target.name == "ours":
                    result["rss_mb_after_load"] = vm_rss_mb(process.pid)
                    result["native_libraries_mapped"] = mapped_libraries(process.pid)
                    result["models_loaded"] = models_loaded(port)
                figures["servers"][target.name] = result
        figures["ours_both_models"] = _both_models(settings, ports["ours_both"], wrk, workdir, log)
        figures["serving_imports"] = serving_imports(
            _server_env(settings, MLOPS_SERVED_MODELS=CHURN.name)
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
