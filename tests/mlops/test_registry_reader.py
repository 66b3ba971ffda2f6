"""`mlops.registry_reader`: the registry read without MLflow's client gives MLflow's client's
answers, on a real SQLite registry and through a real MLflow server behind its basic-auth app
(the stack's), artifacts proxied by the server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts

from mlops.registry_reader import (
    ArtifactsMissing,
    MlflowClientReader,
    RegistryReader,
    RegistryRequestFailed,
    RestRegistryReader,
    SqliteRegistryReader,
    VersionInfo,
    VersionNotFound,
    registry_reader,
)
from stack.mlflow_auth import READER, WRITER

MODEL = "model-a"


def _bundle(folder: Path) -> Path:
    """A folder shaped like a model bundle, with a subfolder to show recursion."""
    (folder / "sub").mkdir(parents=True)
    (folder / "model.onnx").write_bytes(bytes(range(256)) * 40)
    (folder / "model_meta.json").write_text('{"threshold": 0.5}')
    (folder / "sub" / "note.txt").write_text("nested")
    return folder


def _register(client: MlflowClient, tmp_path: Path) -> str:
    """Three versions of MODEL from one run with the bundle under `onnx`; v2 tagged and
    `champion`, v3 deleted. Returns the run id."""
    experiment = client.create_experiment("reader-test")
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(_bundle(tmp_path / "bundle")), "onnx")
    client.set_terminated(run.info.run_id)
    client.create_registered_model(MODEL)
    for _ in range(3):
        client.create_model_version(MODEL, f"runs:/{run.info.run_id}/onnx", run_id=run.info.run_id)
    client.set_model_version_tag(MODEL, "2", "onnx_sha256", "abc")
    client.set_model_version_tag(MODEL, "2", "note", "")
    client.set_registered_model_alias(MODEL, "champion", "2")
    client.delete_model_version(MODEL, "3")
    return str(run.info.run_id)


def _as_client_sees_it(client: MlflowClient, version: str) -> VersionInfo:
    found = client.get_model_version(MODEL, version)
    return VersionInfo(
        name=found.name,
        version=str(found.version),
        run_id=found.run_id,
        tags=dict(found.tags),
        creation_timestamp=found.creation_timestamp,
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _reads_as_the_client(
    reader: RegistryReader, client: MlflowClient, run_id: str, tmp_path: Path
) -> None:
    for version in ("1", "2"):
        assert reader.version(MODEL, version) == _as_client_sees_it(client, version)
    assert reader.version_by_alias(MODEL, "champion") == _as_client_sees_it(client, "2")
    assert reader.version(MODEL, "2").tags == {"onnx_sha256": "abc", "note": ""}
    for missing in (
        lambda: reader.version_by_alias(MODEL, "challenger"),
        lambda: reader.version(MODEL, "3"),  # deleted
        lambda: reader.version(MODEL, "9"),
        lambda: reader.version_by_alias("no-such-model", "champion"),
        lambda: reader.version("no-such-model", "1"),
    ):
        with pytest.raises(VersionNotFound):
            missing()
    fetched = reader.download_artifacts(run_id, "onnx", tmp_path / "ours")
    assert fetched == tmp_path / "ours" / "onnx"
    theirs = download_artifacts(
        run_id=run_id,
        artifact_path="onnx",
        dst_path=str(tmp_path / "theirs"),
        tracking_uri=client.tracking_uri,
    )
    assert _files(fetched) == _files(Path(theirs)) == _files(tmp_path / "bundle")
    with pytest.raises(ArtifactsMissing):
        reader.download_artifacts(run_id, "not-logged", tmp_path / "none")


@pytest.mark.slow  # MLflow creates and migrates its database
def test_the_sqlite_reader_answers_as_mlflows_client(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run_id = _register(client, tmp_path)
    reader = registry_reader(uri)
    assert isinstance(reader, SqliteRegistryReader)
    _reads_as_the_client(reader, client, run_id, tmp_path)
    # The reader never creates a registry: a home without one has no versions.
    with pytest.raises(VersionNotFound):
        registry_reader(f"sqlite:///{tmp_path / 'absent.db'}").version_by_alias(MODEL, "x")
    assert not (tmp_path / "absent.db").exists()


def test_other_uris_go_through_mlflows_client() -> None:
    assert isinstance(registry_reader("http://mlflow:5000"), RestRegistryReader)
    assert isinstance(registry_reader("https://mlflow.example"), RestRegistryReader)
    assert isinstance(registry_reader("postgresql://u@db/mlflow"), MlflowClientReader)
    assert isinstance(registry_reader("sqlite:///x.db?timeout=5"), MlflowClientReader)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The stack's MLflow service (`stack.mlflow_auth`: basic auth, artifacts served) on a
    SQLite store; yields its URI and the two users' passwords."""
    port = _free_port()
    passwords = {WRITER: "writer-" + "w" * 32, READER: "reader-" + "r" * 32}
    environment = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(tmp_path / "auth" / "basic_auth.ini"),
        "MLFLOW_AUTH_ADMIN_PASSWORD": "admin-" + "a" * 32,
        "MLFLOW_WRITER_PASSWORD": passwords[WRITER],
        "MLFLOW_READER_PASSWORD": passwords[READER],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "secret-" + "s" * 32,
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path / 'server.db'}",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    command = [
        sys.executable,
        "-m",
        "stack.mlflow_auth",
        "--artifacts-destination",
        str(tmp_path / "served-artifacts"),
        "--serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "MLflow's server did not start"
                time.sleep(0.5)
        yield uri, passwords
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.mark.slow  # starts MLflow's server
def test_the_rest_reader_answers_as_mlflows_client_behind_basic_auth(
    mlflow_server: tuple[str, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, passwords = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", WRITER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", passwords[WRITER])
    writer = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run_id = _register(writer, tmp_path)
    assert writer.get_run(run_id).info.artifact_uri.startswith("mlflow-artifacts:")
    # The API's user: READ only. Its credentials come from MLflow's own variables.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", READER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", passwords[READER])
    reader = registry_reader(uri)
    _reads_as_the_client(reader, MlflowClient(tracking_uri=uri, registry_uri=uri), run_id, tmp_path)
    # A wrong password is not "no such model".
    stranger = RestRegistryReader(
        uri, {"MLFLOW_TRACKING_USERNAME": READER, "MLFLOW_TRACKING_PASSWORD": "wrong"}
    )
    with pytest.raises(RegistryRequestFailed) as refused:
        stranger.version_by_alias(MODEL, "champion")
    assert refused.value.status == 401
