"""Reading the model registry without MLflow's client: a version by alias or number, and the
artifacts of its run.

Serving resolves its aliases every few seconds and downloads a bundle when one moves. MLflow's
client for those few reads imports most of MLflow (its model flavours, and scipy through
them): tens of MB of the API's memory for three lookups and a download. They are stable,
documented reads, so this module makes them itself:

- `http://` or `https://` (the stack): MLflow's REST API, with the credentials MLflow's
  client reads (MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD for basic auth, or
  MLFLOW_TRACKING_TOKEN); artifacts through the server (`mlflow-artifacts:`) or from a local
  path the run names. MLflow's basic-auth app answers 403, not 404, for a model that does not
  exist: that is "no such version" when no model of the name is visible, as in
  `mlops.registry.champion_version`.
- `sqlite:///PATH` (an embedded home): the database MLflow's SQLAlchemy store writes, read
  only, in that store's layout (a deleted version is marked, not removed); artifacts from
  the run's local folder.
- anything else: MLflow's own client, imported then.

The answers are those of `MlflowClient.get_model_version_by_alias`, `get_model_version` and
`mlflow.artifacts.download_artifacts` (tests compare them on real registries).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.request import url2pathname

# MLflow's SQLAlchemy store marks a deleted version with this stage instead of removing it.
_DELETED_STAGE = "Deleted_Internal"
# MLflow's workspace of a registry that does not use workspaces.
_DEFAULT_WORKSPACE = "default"
# Per request; a few retries, spaced, for a server that restarts or is busy.
HTTP_TIMEOUT_S = 30.0
_HTTP_ATTEMPTS = 3
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class VersionNotFound(LookupError):
    """The registry has no such model, version or alias."""


class ArtifactsMissing(LookupError):
    """A run's artifact path holds nothing to download."""


class RegistryRequestFailed(RuntimeError):
    """The registry answered with an error other than "not found"."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(f"{status} {error_code}: {message}".strip())
        self.status = status
        self.error_code = error_code

    @property
    def not_found(self) -> bool:
        return self.status == 404 or self.error_code == "RESOURCE_DOES_NOT_EXIST"


@dataclass(frozen=True)
class VersionInfo:
    """One registered model version, as serving needs it."""

    name: str
    version: str
    run_id: str | None
    tags: dict[str, str] = field(default_factory=dict)
    creation_timestamp: int | None = None
    """Milliseconds since the epoch, as MLflow gives it; None when it did not say."""


class RegistryReader(Protocol):
    def version_by_alias(self, name: str, alias: str) -> VersionInfo: ...

    def version(self, name: str, version: str) -> VersionInfo: ...

    def download_artifacts(self, run_id: str, path: str, dest: Path) -> Path:
        """Copy the run's artifact `path` (a file or a folder) under `dest`; give its copy."""
        ...


def registry_reader(tracking_uri: str) -> RegistryReader:
    """The reader of the registry at `tracking_uri` (see the module's docstring)."""
    scheme = urllib.parse.urlsplit(tracking_uri).scheme
    if scheme in ("http", "https"):
        return RestRegistryReader(tracking_uri)
    if scheme == "sqlite" and tracking_uri.startswith("sqlite:///") and "?" not in tracking_uri:
        return SqliteRegistryReader(Path(tracking_uri[len("sqlite:///") :]))
    return MlflowClientReader(tracking_uri)


def _copy_local(source: Path, path: str, dest: Path) -> Path:
    """A run's artifact `path` under its local artifact folder `source`, copied under `dest`."""
    origin = source / path
    target = dest / path
    if origin.is_dir():
        shutil.copytree(origin, target, dirs_exist_ok=True)
    elif origin.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(origin, target)
    else:
        raise ArtifactsMissing(f"no artifacts at '{path}' of {source}")
    return target


def _local_path(artifact_uri: str) -> Path | None:
    """The folder of a `file:` (or plain path) artifact URI; None for a remote one."""
    parts = urllib.parse.urlsplit(artifact_uri)
    if parts.scheme == "file":
        return Path(url2pathname(parts.path))
    if parts.scheme == "" or len(parts.scheme) == 1:  # a path (or a Windows drive letter)
        return Path(artifact_uri)
    return None


class SqliteRegistryReader:
    """The registry in an embedded home's SQLite database, read as MLflow's store writes it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise VersionNotFound(f"no registry database at {self.path}")
        # Read only: a reader never creates or migrates MLflow's database.
        return sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)

    def version_by_alias(self, name: str, alias: str) -> VersionInfo:
        with contextlib.closing(self._connect()) as db:
            where, args = _scoped(db, "registered_model_aliases", "name = ? AND alias = ?")
            row = db.execute(
                f"SELECT version FROM registered_model_aliases WHERE {where}", (name, alias, *args)
            ).fetchone()
            if row is None:
                raise VersionNotFound(f"registered model '{name}' has no alias '{alias}'")
            return self._version(db, name, str(row[0]))

    def version(self, name: str, version: str) -> VersionInfo:
        with contextlib.closing(self._connect()) as db:
            return self._version(db, name, version)

    def _version(self, db: sqlite3.Connection, name: str, version: str) -> VersionInfo:
        where, args = _scoped(
            db, "model_versions", "name = ? AND version = ? AND current_stage != ?"
        )
        row = db.execute(
            f"SELECT version, run_id, creation_time FROM model_versions WHERE {where}",
            (name, version, _DELETED_STAGE, *args),
        ).fetchone()
        if row is None:
            raise VersionNotFound(f"registered model '{name}' has no version {version}")
        where, args = _scoped(db, "model_version_tags", "name = ? AND version = ?")
        tags = db.execute(
            f'SELECT "key", value FROM model_version_tags WHERE {where}', (name, version, *args)
        ).fetchall()
        return VersionInfo(
            name=name,
            version=str(row[0]),
            run_id=row[1] or None,
            tags={key: value for key, value in tags},
            creation_timestamp=row[2],
        )

    def download_artifacts(self, run_id: str, path: str, dest: Path) -> Path:
        with contextlib.closing(self._connect()) as db:
            query = "SELECT artifact_uri FROM runs WHERE run_uuid = ?"
            row = db.execute(query, (run_id,)).fetchone()
        if row is None:
            raise VersionNotFound(f"no run {run_id}")
        local = _local_path(row[0])
        if local is None:  # logged elsewhere (a server's proxy, a bucket): MLflow's client
            return MlflowClientReader(f"sqlite:///{self.path}").download_artifacts(
                run_id, path, dest
            )
        return _copy_local(local, path, dest)


def _scoped(db: sqlite3.Connection, table: str, where: str) -> tuple[str, tuple[str, ...]]:
    """`where`, in the default workspace when the table has MLflow's workspace column."""
    columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    if "workspace" in columns:
        return f"{where} AND workspace = ?", (_DEFAULT_WORKSPACE,)
    return where, ()


class RestRegistryReader:
    """A tracking server's registry, through MLflow's REST API."""

    def __init__(self, tracking_uri: str, environment: dict[str, str] | None = None) -> None:
        self.base = tracking_uri.rstrip("/")
        env = os.environ if environment is None else environment
        self._headers = {"User-Agent": "mlops-registry-reader"}
        user, password = env.get("MLFLOW_TRACKING_USERNAME"), env.get("MLFLOW_TRACKING_PASSWORD")
        token = env.get("MLFLOW_TRACKING_TOKEN")
        if user and password:
            basic = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {basic}"
        elif token:
            self._headers["Authorization"] = f"Bearer {token}"

    def version_by_alias(self, name: str, alias: str) -> VersionInfo:
        return self._model_version(
            name, "registered-models/alias", {"name": name, "alias": alias}, f"alias '{alias}'"
        )

    def version(self, name: str, version: str) -> VersionInfo:
        return self._model_version(
            name, "model-versions/get", {"name": name, "version": version}, f"version {version}"
        )

    def _model_version(
        self, name: str, endpoint: str, query: dict[str, str], wanted: str
    ) -> VersionInfo:
        try:
            found = self._json(f"/api/2.0/mlflow/{endpoint}", query)["model_version"]
        except RegistryRequestFailed as error:
            # MLflow answers 400 INVALID_PARAMETER_VALUE, not 404, for an alias a model lacks.
            if error.not_found or error.error_code == "INVALID_PARAMETER_VALUE":
                raise VersionNotFound(f"registered model '{name}' has no {wanted}") from error
            # MLflow's basic-auth app: 403 for a model that does not exist, 403 too for one
            # this user may not read; only the first is "not found".
            if error.status == 403 and not self._registered(name):
                raise VersionNotFound(f"registered model '{name}' has no {wanted}") from error
            raise
        return VersionInfo(
            name=found["name"],
            version=str(found["version"]),
            run_id=found.get("run_id") or None,
            tags={tag["key"]: tag.get("value", "") for tag in found.get("tags", [])},
            creation_timestamp=(
                int(found["creation_timestamp"]) if "creation_timestamp" in found else None
            ),
        )

    def _registered(self, name: str) -> bool:
        quoted = name.replace("'", "\\'")
        found = self._json(
            "/api/2.0/mlflow/registered-models/search", {"filter": f"name = '{quoted}'"}
        )
        return bool(found.get("registered_models"))

    def download_artifacts(self, run_id: str, path: str, dest: Path) -> Path:
        run = self._json("/api/2.0/mlflow/runs/get", {"run_id": run_id})["run"]
        artifact_uri: str = run["info"]["artifact_uri"]
        parts = urllib.parse.urlsplit(artifact_uri)
        if parts.scheme == "mlflow-artifacts":
            base = self.base if not parts.netloc else f"{self._scheme()}://{parts.netloc}"
            root = parts.path.strip("/")
            return self._download_proxied(base, f"{root}/{path}".strip("/"), path, dest)
        local = _local_path(artifact_uri)
        if local is None:  # a bucket the client reads itself: MLflow's client
            return MlflowClientReader(self.base).download_artifacts(run_id, path, dest)
        return _copy_local(local, path, dest)

    def _scheme(self) -> str:
        return urllib.parse.urlsplit(self.base).scheme

    def _download_proxied(self, base: str, remote: str, path: str, dest: Path) -> Path:
        """The server's artifacts under `remote` (mlflow-artifacts paths) into `dest/path`."""
        listing = self._json("/api/2.0/mlflow-artifacts/artifacts", {"path": remote}, base=base)
        files = listing.get("files", [])
        target = dest / path
        if not files:
            # A file, not a folder (listing a file gives nothing), or nothing at all.
            try:
                data = self._get(f"/api/2.0/mlflow-artifacts/artifacts/{_quote(remote)}", base=base)
            except RegistryRequestFailed as error:
                if error.not_found:
                    raise ArtifactsMissing(f"no artifacts at '{path}'") from error
                raise
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            return target
        target.mkdir(parents=True, exist_ok=True)
        for entry in files:
            name = entry["path"].rsplit("/", 1)[-1]
            if entry.get("is_dir"):
                self._download_proxied(base, f"{remote}/{name}", f"{path}/{name}", dest)
            else:
                data = self._get(
                    f"/api/2.0/mlflow-artifacts/artifacts/{_quote(f'{remote}/{name}')}", base=base
                )
                (target / name).write_bytes(data)
        return target

    def _json(
        self, route: str, query: dict[str, str], *, base: str | None = None
    ) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self._get(route, query, base=base) or b"{}")
        return found

    def _get(
        self, route: str, query: dict[str, str] | None = None, *, base: str | None = None
    ) -> bytes:
        url = f"{base or self.base}{route}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        request = urllib.request.Request(url, headers=self._headers)
        for attempt in range(_HTTP_ATTEMPTS):
            try:
                with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                    body: bytes = response.read()
                    return body
            except urllib.error.HTTPError as error:
                if error.code not in _RETRY_STATUSES or attempt == _HTTP_ATTEMPTS - 1:
                    raise _failure(error) from error
            except (urllib.error.URLError, TimeoutError, ConnectionError):
                if attempt == _HTTP_ATTEMPTS - 1:
                    raise
            time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")


def _quote(path: str) -> str:
    return urllib.parse.quote(path, safe="/")


def _failure(error: urllib.error.HTTPError) -> RegistryRequestFailed:
    """MLflow's error body ({"error_code", "message"}) of an HTTP error, when it has one."""
    try:
        body = json.loads(error.read() or b"{}")
    except (ValueError, OSError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    return RegistryRequestFailed(
        error.code, str(body.get("error_code", "")), str(body.get("message", error.reason))
    )


class MlflowClientReader:
    """MLflow's own client, for a registry this module does not read itself."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri

    def version_by_alias(self, name: str, alias: str) -> VersionInfo:
        return self._lookup(lambda client: client.get_model_version_by_alias(name, alias))

    def version(self, name: str, version: str) -> VersionInfo:
        return self._lookup(lambda client: client.get_model_version(name, version))

    def _lookup(self, get: Any) -> VersionInfo:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        try:
            found = get(client)
        except MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise VersionNotFound(str(error)) from error
            raise
        return VersionInfo(
            name=found.name,
            version=str(found.version),
            run_id=found.run_id or None,
            tags=dict(found.tags or {}),
            creation_timestamp=found.creation_timestamp,
        )

    def download_artifacts(self, run_id: str, path: str, dest: Path) -> Path:
        from mlflow.artifacts import download_artifacts

        download_artifacts(
            run_id=run_id, artifact_path=path, dst_path=str(dest), tracking_uri=self.tracking_uri
        )
        return dest / path
