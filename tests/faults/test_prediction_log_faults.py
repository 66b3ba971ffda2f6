"""Faults of the prediction log: nothing acknowledged is lost, nothing fails silently.

Each test serves the session's churn model from a copy of its home, sends predictions as
a client would, breaks something (kill -9, the log database away, a poison record, a full
spool or disk), and compares the request ids the API acknowledged (answered 200) with
the log: lost = acknowledged and not logged must be 0. Each prints its figures.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa

from benchmarks.serving import free_port, wait_ready
from features.feature_repo.churn import CHURN_FEATURES_FILE
from mlops.prediction_log import REJECTED_FILE, Prediction, PredictionLog, read_predictions
from mlops.settings import Settings
from tests.helpers.live_api import live_api

pytestmark = pytest.mark.slow  # each needs the session's churn run


@pytest.fixture
def home(churn_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the churn run's home with no prediction log, served churn-only."""
    home = tmp_path / "home"
    skip = shutil.ignore_patterns(
        "prefect", "raw", "predictions.db*", "spool", "labels", "monitoring"
    )
    shutil.copytree(Path(str(churn_run["home"])), home, ignore=skip)
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_SERVED_MODELS", "churn")
    monkeypatch.setenv("MLOPS_MODEL_REFRESH_S", "0")
    return home


def _customers(home: Path, count: int = 50) -> list[str]:
    frame = pd.read_parquet(home / "features" / CHURN_FEATURES_FILE, columns=["customer_id"])
    return [str(c) for c in frame["customer_id"].drop_duplicates().head(count)]


def _logged(url: str) -> list[str]:
    """Every logged request id, duplicates kept; [] when the table does not exist yet."""
    try:
        return [str(r) for r in read_predictions(url)["request_id"]]
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):  # SQLite, Postgres
        return []


def _wait_logged(url: str, wanted: set[str], timeout_s: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        logged = _logged(url)
        if wanted <= set(logged) or time.monotonic() > deadline:
            return logged
        time.sleep(0.25)


def _report(case: str, sent: int, acknowledged: set[str], logged: list[str], **more: int) -> int:
    lost = len(acknowledged - set(logged))
    extra = "".join(f" {k}={v}" for k, v in more.items())
    print(
        f"\n{case}: sent={sent} acknowledged={len(acknowledged)} logged={len(logged)} "
        f"lost={lost} duplicates={len(logged) - len(set(logged))}{extra}"
    )
    return lost


class _Load:
    """Client threads posting predictions until stopped; keeps the acknowledged ids."""

    def __init__(self, base: str, customers: list[str], workers: int = 4) -> None:
        self.base, self.customers = base, customers
        self.sent = 0
        self.acknowledged: set[str] = set()
        self.statuses: dict[int, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(workers)]

    def __enter__(self) -> _Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self, worker: int) -> None:
        with httpx.Client(base_url=self.base, timeout=5) as client:
            i = worker
            while not self._stop.is_set():
                customer = self.customers[i % len(self.customers)]
                i += len(self._threads)
                with self._lock:
                    self.sent += 1
                try:
                    response = client.post("/v1/churn/predict", json={"customer_id": customer})
                except httpx.TransportError:
                    time.sleep(0.05)  # the server is gone: keep trying until stopped
                    continue
                with self._lock:
                    self.statuses[response.status_code] = (
                        self.statuses.get(response.status_code, 0) + 1
                    )
                    if response.status_code == 200:
                        self.acknowledged.add(response.headers["x-request-id"])


def _serve(home: Path, log: Path, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """`mlops serve` in its own process on `home`, ready."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    environ |= {
        "MLOPS_HOME": str(home),
        "MLOPS_SERVED_MODELS": "churn",
        "MLOPS_MODEL_REFRESH_S": "0",
        **env,
    }
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--port", str(port)],
            env=environ,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, f"{base}/health/ready", log)
    except BaseException:
        process.kill()
        process.wait(10)
        raise
    return process, base


def test_kill_9_under_load_loses_no_acknowledged_prediction(home: Path, tmp_path: Path) -> None:
    """The API is killed (SIGKILL) while four clients post predictions; then the log is
    started on the same home as the next `mlops serve` starts it, and every prediction the
    killed API answered is in the log, once."""
    settings = Settings()
    server_log = tmp_path / "server.log"
    server, base = _serve(home, server_log, MLOPS_PREDICTION_LOG_FLUSH_S="0.5")
    try:
        with _Load(base, _customers(home)) as load:
            time.sleep(2)
            server.send_signal(signal.SIGKILL)
            server.wait(10)
        assert server.returncode == -signal.SIGKILL
    finally:
        if server.poll() is None:
            server.kill()
    acknowledged = load.acknowledged
    assert len(acknowledged) > 100, f"too little load to prove anything: {load.statuses}"
    assert set(load.statuses) == {200}, load.statuses
    logged_at_kill = len(_logged(settings.prediction_log_uri))

    # What the next start does first (the lifespan's `start_log`): ship what the killed
    # process spooled and did not ship.
    log = PredictionLog(settings.prediction_log_uri, settings.prediction_spool_dir)
    log.start()
    log.close()
    logged = _logged(settings.prediction_log_uri)
    lost = _report(
        "kill -9 under load",
        load.sent,
        acknowledged,
        logged,
        logged_before_restart=logged_at_kill,
    )
    assert lost == 0
    assert len(logged) == len(set(logged)), "a prediction was logged twice"
    assert list(settings.prediction_spool_dir.glob("*.seg")) == []


def test_a_log_database_outage_loses_nothing_and_the_api_starts_without_it(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log database is unreachable from the start (SQLite in a folder that does not
    exist): the API starts, answers and stays ready; the records wait in the spool and
    arrive, once each, when the database comes back."""
    database = tmp_path / "log-db"
    url = f"sqlite:///{database / 'predictions.db'}"
    monkeypatch.setenv("MLOPS_PREDICTION_LOG_URL", url)
    monkeypatch.setenv("MLOPS_PREDICTION_LOG_FLUSH_S", "0.2")
    settings = Settings()
    customers = _customers(home)
    acknowledged: set[str] = set()
    sent = 200
    with live_api(settings) as base, httpx.Client(base_url=base, timeout=10) as client:
        for i in range(sent):
            response = client.post(
                "/v1/churn/predict", json={"customer_id": customers[i % len(customers)]}
            )
            assert response.status_code == 200, response.text
            acknowledged.add(response.headers["x-request-id"])
        time.sleep(1)  # a few shipping attempts, all failing
        assert client.get("/health/ready").status_code == 200
        metrics = client.get("/metrics").text
        failures = _metric(metrics, "mlops_prediction_log_ship_failures_total")
        assert failures >= 1
        assert _metric(metrics, "mlops_prediction_log_spool_bytes") > 0
        assert _logged(url) == []
        database.mkdir()  # the database is back
        logged = _wait_logged(url, acknowledged)
    lost = _report("log database outage", sent, acknowledged, logged, ship_failures=int(failures))
    assert lost == 0
    assert len(logged) == len(set(logged)) == sent
    assert list(settings.prediction_spool_dir.glob("*.seg")) == []


def _metric(exposition: str, name: str, labels: str = "") -> float:
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    for line in exposition.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    raise AssertionError(f"{prefix.strip()} not in the metrics")


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.services)]
)
def test_poison_records_are_rejected_alone_and_their_batches_logged(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """1,000 predictions shipped in batches of 500, 8 of them poison (a NaN score, as a
    raw customer with TotalCharges=1e308 gave): the 992 others are logged, the 8 are in
    the rejected file with the reason."""
    url = (
        request.getfixturevalue("postgres_url")
        if database == "postgres"
        else f"sqlite:///{tmp_path / 'p.db'}"
    )
    poison = {17, 130, 260, 499, 500, 640, 801, 999}
    log = PredictionLog(url, tmp_path / "spool", flush_s=3600)
    log.start()
    for i in range(1000):
        log.append(
            Prediction(
                request_id=f"req-{i}",
                endpoint="/v1/churn/predict",
                model_name="churn",
                model_version="1",
                entity={"customer_id": f"C{i}"},
                feature_names=("tenure_months", "total_charges"),
                feature_values=[float(i), float("inf") if i in poison else 20.0],
                score=float("nan") if i in poison else 0.5,
                decision=False,
            )
        )
    log.close()
    logged = _logged(url)
    good = {f"req-{i}" for i in range(1000) if i not in poison}
    rejected = (tmp_path / "spool" / REJECTED_FILE).read_text().splitlines()
    lost = _report(f"poison records ({database})", 1000, good, logged, rejected=len(rejected))
    assert lost == 0 and len(logged) == len(good)
    assert len(rejected) == len(poison) == log.dropped["rejected"]
    assert all("the score is not a finite number" in line for line in rejected)


def test_a_full_spool_refuses_with_503_says_so_and_loses_nothing_acknowledged(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log database is down and the spool's bound is 8 KB: once full, predictions are
    refused (503, counted), readiness is false with the reason; when the database is back
    the spool drains, readiness returns, and every acknowledged prediction is logged."""
    database = tmp_path / "log-db"
    url = f"sqlite:///{database / 'predictions.db'}"
    monkeypatch.setenv("MLOPS_PREDICTION_LOG_URL", url)
    monkeypatch.setenv("MLOPS_PREDICTION_LOG_FLUSH_S", "0.2")
    monkeypatch.setenv("MLOPS_PREDICTION_LOG_SPOOL_MAX_MB", str(8 / 1024))
    _full_and_back(Settings(), database, "full spool (size bound)", "spool full")


def _full_and_back(settings: Settings, database: Path, case: str, reason: str) -> None:
    customers = _customers(settings.home)
    acknowledged: set[str] = set()
    refused, sent = 0, 0
    with live_api(settings) as base, httpx.Client(base_url=base, timeout=10) as client:
        for i in range(200):
            sent += 1
            response = client.post(
                "/v1/churn/predict", json={"customer_id": customers[i % len(customers)]}
            )
            if response.status_code == 200:
                acknowledged.add(response.headers["x-request-id"])
            else:
                assert response.status_code == 503, response.text
                assert response.json()["error"] == "prediction_log_unavailable"
                refused += 1
        assert acknowledged and refused, (len(acknowledged), refused)
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["prediction_log"] is False
        assert reason in ready.json()["prediction_log_error"]
        metrics = client.get("/metrics").text
        assert _metric(metrics, "mlops_prediction_log_persisting") == 0
        dropped = sum(
            _metric(metrics, "mlops_prediction_log_dropped_total", f'reason="{r}"')
            for r in ("spool_full", "spool_error")
        )
        assert dropped == refused

        database.mkdir()  # the database is back: the spool drains
        logged = _wait_logged(settings.prediction_log_uri, acknowledged)
        deadline = time.monotonic() + 20
        while (ready := client.get("/health/ready")).status_code != 200:
            left = sorted(p.name for p in settings.prediction_spool_dir.iterdir())
            assert time.monotonic() < deadline, f"not ready again: {ready.json()}; {left}"
            time.sleep(0.2)
        after = client.post("/v1/churn/predict", json={"customer_id": customers[0]})
        assert after.status_code == 200
        acknowledged.add(after.headers["x-request-id"])
        logged = _wait_logged(settings.prediction_log_uri, acknowledged)
    lost = _report(case, sent + 1, acknowledged, logged, refused=refused)
    assert lost == 0
    assert len(logged) == len(set(logged))


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 64 KB tmpfs, mounted for one test; skipped where mounting is not allowed."""
    mountpoint = tmp_path / "small-fs"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_a_full_disk_refuses_with_503_says_so_and_loses_nothing_acknowledged(
    home: Path, tmp_path: Path, small_filesystem: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same with a real full disk: the spool on a 64 KB tmpfs, its bound far above."""
    database = tmp_path / "log-db"
    monkeypatch.setenv("MLOPS_PREDICTION_LOG_URL", f"sqlite:///{database / 'predictions.db'}")
    monkeypatch.setenv("MLOPS_PREDICTION_LOG_FLUSH_S", "0.2")
    monkeypatch.setenv("MLOPS_PREDICTION_LOG_SPOOL_DIR", str(small_filesystem / "spool"))
    _full_and_back(Settings(), database, "full disk (64 KB tmpfs)", "No space left on device")


class _Outage:
    """A TCP proxy to a server, which can be cut (connections dropped, new ones refused)
    and restored on the same port: an outage of the server as its clients see it."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def restore(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@pytest.mark.services
def test_a_postgres_outage_loses_nothing_and_logs_each_record_once(
    postgres_url: str, tmp_path: Path
) -> None:
    """The log's Postgres goes away (its pooled connections dropped, new ones refused)
    while predictions keep coming, then comes back: every record is logged, once."""
    direct = sa.make_url(postgres_url)
    outage = _Outage(direct.host or "127.0.0.1", direct.port or 5432)
    outage.restore()
    url = direct.set(host="127.0.0.1", port=outage.port).render_as_string(hide_password=False)
    log = PredictionLog(url, tmp_path / "spool", flush_s=0.1)
    log.start()
    sent = 0

    def send(count: int) -> None:
        nonlocal sent
        for _ in range(count):
            log.append(
                Prediction(
                    request_id=f"req-{sent}",
                    endpoint="/v1/churn/predict",
                    model_name="churn",
                    model_version="1",
                    entity={"customer_id": f"C{sent}"},
                    feature_names=("tenure_months",),
                    feature_values=[float(sent)],
                    score=0.5,
                    decision=False,
                )
            )
            sent += 1

    try:
        send(100)
        assert len(_wait_logged(postgres_url, {f"req-{i}" for i in range(100)})) == 100
        outage.cut()
        send(300)
        deadline = time.monotonic() + 10
        while log.ship_failures == 0:
            assert time.monotonic() < deadline, "the outage was not noticed"
            time.sleep(0.1)
        assert log.persisting and len(_logged(postgres_url)) == 100
        outage.restore()
        acknowledged = {f"req-{i}" for i in range(sent)}
        logged = _wait_logged(postgres_url, acknowledged)
    finally:
        log.close()
        outage.cut()
    lost = _report("postgres outage", sent, acknowledged, logged, ship_failures=log.ship_failures)
    assert lost == 0
    assert len(logged) == len(set(logged)) == sent
