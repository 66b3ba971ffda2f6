"""The Kubernetes manifests: valid against the Kubernetes schemas, rendered by kustomize,
and consistent with the code (settings, commands, routes, ports, the image's user)."""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import mlflow.environment_variables
import prefect.runner.server
import prefect.settings
import pytest
import yaml
from pydantic import ValidationError

from mlops.settings import Settings
from serving.app import create_app
from tests.helpers.cli_commands import parse_mlops
from tests.infra.image import IMAGE_UID

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
BASE, LOCAL = K8S / "base", K8S / "overlays" / "local"
# The oldest Kubernetes release still maintained when this was written; the schemas ship
# with kubernetes-validate, so no network is needed.
KUBERNETES_VERSION = "1.33.0"


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _kustomization(folder: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((folder / "kustomization.yaml").read_text())
    return loaded


def _resource_files(folder: Path) -> list[Path]:
    return [
        folder / entry
        for entry in _kustomization(folder)["resources"]
        if (folder / entry).is_file()
    ]


def _env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key.strip(): value for key, value in pairs}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """`kubectl kustomize` of the local overlay, with the example secrets filled in."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    copy = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("secrets.env"))
    shutil.copy(copy / "base" / "secrets.env.example", copy / "base" / "secrets.env")
    result = subprocess.run(
        [kubectl, "kustomize", str(copy / "overlays" / "local")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _validate(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    "path", [*_resource_files(BASE), *_resource_files(LOCAL)], ids=lambda p: p.name
)
def test_every_resource_file_is_valid_kubernetes(path: Path) -> None:
    for document in _documents(path):
        _validate(document)


def test_the_rendered_overlay_is_valid_kubernetes(rendered: list[dict[str, Any]]) -> None:
    kinds = sorted(f"{doc['kind']}/{doc['metadata']['name'].split('-')[0]}" for doc in rendered)
    assert kinds == sorted(
        [
            "ConfigMap/mlops",
            "Deployment/api",
            "Deployment/prefect",
            "HorizontalPodAutoscaler/api",
            "Namespace/mlops",
            "NetworkPolicy/api",
            "NetworkPolicy/prefect",
            "PersistentVolumeClaim/prefect",
            "Secret/mlops",
            "Service/api",
        ]
    )
    for document in rendered:
        _validate(document)


def test_a_broken_manifest_is_caught() -> None:
    deployment = _documents(BASE / "api-deployment.yaml")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["prot"] = (
        8000
    )
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(deployment)
    policy = _documents(BASE / "api-networkpolicy.yaml")[0]
    policy["spec"]["policyType"] = policy["spec"].pop("policyTypes")
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(policy)


def _by_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == kind}


def test_the_overlay_patches_replicas_resources_and_the_image(
    rendered: list[dict[str, Any]],
) -> None:
    deployments = _by_kind(rendered, "Deployment")
    assert deployments["api"]["spec"]["replicas"] == 1
    hpa = _by_kind(rendered, "HorizontalPodAutoscaler")["api"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 2)
    for deployment in deployments.values():
        assert deployment["metadata"]["namespace"] == "mlops"
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "mlops-platform:local"
        assert container["imagePullPolicy"] == "IfNotPresent"
    api = deployments["api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["resources"]["requests"]["memory"] == "384Mi"
    # The generated names carry a content hash, and the pods refer to those names.
    config = next(iter(_by_kind(rendered, "ConfigMap")))
    secret = next(iter(_by_kind(rendered, "Secret")))
    assert config != "mlops-config" and secret != "mlops-secrets"
    refs = [next(iter(source.values()))["name"] for source in api["envFrom"]]
    assert refs == [config, secret]


def _containers(documents: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [
        (doc["spec"]["template"]["spec"], container)
        for doc in documents
        if doc["kind"] == "Deployment"
        for container in doc["spec"]["template"]["spec"]["containers"]
    ]


BASE_DEPLOYMENTS = [doc for path in _resource_files(BASE) for doc in _documents(path)]


def test_pods_run_as_the_image_user_with_limits_and_no_service_links() -> None:
    containers = _containers(BASE_DEPLOYMENTS)
    assert len(containers) == 2
    for pod, container in containers:
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] == IMAGE_UID
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        # A Service named like a setting's prefix would inject MLOPS_*/PREFECT_* variables.
        assert pod["enableServiceLinks"] is False
        # Neither calls the Kubernetes API: a stolen pod holds no token for it.
        assert pod["automountServiceAccountToken"] is False
        assert set(container["resources"]) == {"requests", "limits"}
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind])
        mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
        assert {"/data", "/tmp"} <= mounts  # the only writable paths


def _environment_names() -> set[str]:
    names = set(_env_file(BASE / "config.env")) | set(_env_file(BASE / "secrets.env.example"))
    for _, container in _containers(BASE_DEPLOYMENTS):
        names |= {variable["name"] for variable in container.get("env", [])}
    return names


def _unknown_variable(name: str) -> bool:
    if name.startswith("MLOPS_"):
        fields = Settings.model_fields.items()
        return name not in {f"MLOPS_{n.upper()}" for n, f in fields if f.validation_alias is None}
    if name.startswith("MLFLOW_"):
        return not hasattr(mlflow.environment_variables, name)
    if name.startswith("PREFECT_"):
        return not hasattr(prefect.settings, name)
    return True


def test_every_environment_variable_is_one_the_code_reads() -> None:
    names = _environment_names()
    assert "MLOPS_ADMIN_TOKEN" in names and "MLFLOW_TRACKING_URI" in names
    unknown = {name for name in names if _unknown_variable(name)}
    assert not unknown, f"variables nothing reads: {sorted(unknown)}"
    assert _unknown_variable("MLOPS_ADMIN_TOKENS") and _unknown_variable("PREFECT_API_URI")


def test_credentials_live_in_the_secret_and_the_settings_accept_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config, secrets = _env_file(BASE / "config.env"), _env_file(BASE / "secrets.env.example")
    assert not set(config) & set(secrets)
    assert not any(word in key for key in config for word in ("TOKEN", "PASSWORD", "AUTH"))
    assert "@" not in "".join(config.values())  # no user:password@host in the ConfigMap
    for key in ("MLOPS_ADMIN_TOKEN", "MLOPS_PREDICTION_LOG_URL", "PREFECT_API_AUTH_STRING"):
        assert key in secrets
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(BASE / "secrets.env")], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0, "infra/k8s/base/secrets.env must stay out of git"
    for key, value in {**config, **secrets}.items():
        monkeypatch.setenv(key, value)
    # The example's token is a placeholder, refused until replaced.
    with pytest.raises(ValidationError, match="MLOPS_ADMIN_TOKEN is a placeholder"):
        Settings()
    monkeypatch.setenv("MLOPS_ADMIN_TOKEN", "a-long-random-token-of-our-own")
    settings = Settings()
    assert settings.profile == "stack" and settings.online_store == "redis"


def test_commands_probes_and_ports_match_the_code() -> None:
    routes = {getattr(route, "path", None) for route in create_app(Settings()).routes}
    deployments = _by_kind(BASE_DEPLOYMENTS, "Deployment")
    api = deployments["api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["command"][:1] == ["mlops"]
    parse_mlops(api["command"][1:])
    assert api["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert api["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert api[probe]["httpGet"]["path"] in routes
        assert api[probe]["httpGet"]["port"] == "http"
    ports = {port["name"]: port["containerPort"] for port in api["ports"]}
    config = _env_file(BASE / "config.env")
    assert ports == {
        "http": int(config["MLOPS_API_PORT"]),
        "admin": int(config["MLOPS_ADMIN_PORT"]),
    }
    service = _by_kind(BASE_DEPLOYMENTS, "Service")["api"]
    assert service["spec"]["selector"] == deployments["api"]["spec"]["selector"]["matchLabels"]
    # The Service exposes the API port alone; /metrics and /admin are on the admin port
    # (serving.admin_port), where the pods' scrape annotations point Prometheus.
    (exposed,) = service["spec"]["ports"]
    assert exposed["targetPort"] == "http" and exposed["port"] == ports["http"]
    annotations = deployments["api"]["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == ports["admin"]
    assert annotations["prometheus.io/path"] == "/metrics" and "/metrics" in routes
    assert any(path.startswith("/admin/") for path in routes if path)

    worker = deployments["prefect-worker"]["spec"]["template"]["spec"]["containers"][0]
    env = {variable["name"]: variable["value"] for variable in worker["env"]}
    assert worker["livenessProbe"]["httpGet"]["path"] == "/health"
    assert '"/health"' in inspect.getsource(prefect.runner.server)
    assert int(env["PREFECT_RUNNER_SERVER_PORT"]) == worker["ports"][0]["containerPort"]
    assert worker["command"][:1] == ["mlops"]
    parse_mlops(worker["command"][1:])


def test_without_secrets_the_build_fails_instead_of_deploying_defaults(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("secrets.env"))
    result = subprocess.run(
        [kubectl, "kustomize", str(copy / "overlays" / "local")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode != 0 and "secrets.env" in result.stderr


# What each component calls, by the name config.env and the secret give it: the API never
# calls Prefect (only the worker's flows report to it).
CALLS = {
    "api": {"mlflow", "redis", "postgres"},
    "prefect-worker": {"mlflow", "redis", "postgres", "prefect-server"},
}
# The cluster's DNS, in kube-system, which every component needs to find the others.
KUBE_DNS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
# host:port in the configuration's URLs and connection strings.
HOST_PORT = re.compile(r"(?:^|//|@)([a-z][a-z0-9-]*):(\d+)")


def _configured_addresses() -> dict[str, int]:
    """Host -> port of every address config.env and the secret example name."""
    values = {**_env_file(BASE / "config.env"), **_env_file(BASE / "secrets.env.example")}
    return {host: int(port) for value in values.values() for host, port in HOST_PORT.findall(value)}


def _peer_names(peers: list[dict[str, Any]]) -> set[str]:
    return {peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for peer in peers}


def test_each_component_has_a_network_policy_allowing_only_its_flows() -> None:
    policies = _by_kind(BASE_DEPLOYMENTS, "NetworkPolicy")
    deployments = _by_kind(BASE_DEPLOYMENTS, "Deployment")
    assert set(policies) == set(deployments) == set(CALLS)
    addresses = _configured_addresses()
    assert set().union(*CALLS.values()) == set(addresses)
    for name, policy in policies.items():
        spec = policy["spec"]
        # Selects its component's pods, both ways: what is not listed below is refused.
        assert spec["podSelector"] == deployments[name]["spec"]["selector"]
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        dns, *calls = spec["egress"]
        assert [port["port"] for port in dns["ports"]] == [53, 53]
        assert dns["to"] == [KUBE_DNS], name
        reached = {
            (peer, port["port"])
            for rule in calls
            for peer in _peer_names(rule["to"])
            for port in rule["ports"]
        }
        assert reached == {(host, addresses[host]) for host in CALLS[name]}, name

    # The worker takes no connection (its probe comes from the node, which always passes).
    assert policies["prefect-worker"]["spec"]["ingress"] == []
    # The API: its port from anyone, the admin port from Prometheus and Alertmanager only.
    public, admin = policies["api"]["spec"]["ingress"]
    assert "from" not in public and public["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert admin["ports"] == [{"port": "admin", "protocol": "TCP"}]
    assert _peer_names(admin["from"]) == {"prometheus", "alertmanager"}
