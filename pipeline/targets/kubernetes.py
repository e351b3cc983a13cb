"""The kubernetes target: the backend as a Helm release of `helm/textbook-stack` on a cluster.

Per environment, `deploy.toml [kubernetes.<env>]` names the kube context, the namespace, the
release, Helm's timeout and the values file (KUBE_CONTEXT / KUBE_NAMESPACE override the first
two). helm and kubectl read KUBECONFIG (a secret path) from the environment: it is never put on
a command line. They are found on PATH, else in tools/kubernetes/bin (tools/kubernetes/install.py).

A deploy lints the chart with the environment's values first (a value that breaks the schema
stops it with exit 2 before anything is applied), checks the context and the cluster, takes the
lock, then `helm upgrade --install --atomic --wait` (Helm undoes a failed upgrade itself) and
verifies: `kubectl rollout status`, then `/ready` through the Service (the API server's service
proxy, so no port-forward process is left behind).

The lock is Helm's own: while an install, upgrade or rollback runs, the release's newest
revision is `pending-*`, and Helm refuses a second one. The lock step reads it first, so a
concurrent deploy stops with exit 3 naming the holder (the revision's description, which every
deploy sets to who started it and its recorded job; a rollback marks that job rolled back).
A pending state left by a killed helm is cleared with `helm rollback RELEASE` by hand (docs:
README, "Deploy to Kubernetes").
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shlex
import shutil
import subprocess  # nosec B404: helm and kubectl with argv lists, no shell
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from pipeline.core import Option, OptionValue, Run, Step
from pipeline.deploy_config import DEPLOY_CONFIG, load_section
from pipeline.errors import LockHeld, OperationFailed, UsageError
from pipeline.operations.build_image import ImageBuild, pushed_build
from pipeline.targets.base import Target
from textbook_api.config import Settings

CHART = Path("helm/textbook-stack")
TOOLS_BIN = Path(__file__).resolve().parents[2] / "tools" / "kubernetes" / "bin"
INSTALL_HINT = "python3 tools/kubernetes/install.py"
PENDING = ("pending-install", "pending-upgrade", "pending-rollback")
# Beyond Helm's own --timeout, how long to wait for the process before giving up on it.
GRACE_SECONDS = 60
# Commands that only read (history, contexts, the cluster's readiness) get this long.
READ_SECONDS = 30
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# The recorded job a revision's description names (see KubernetesTarget.description).
_JOB = re.compile(r"\(job (\d+)\)$")
_KEYS = {"context": str, "namespace": str, "release": str, "timeout_seconds": int,
         "values": str, "url": str}


@dataclass(frozen=True)
class Cluster:
    """One environment's `[kubernetes.<env>]` table, validated."""

    environment: str
    context: str
    namespace: str
    release: str
    timeout_seconds: int
    values: Path
    url: str  # where the API answers publicly ("" : not reachable from outside the cluster)

    @property
    def deployment(self) -> str:
        return f"{self.release}-backend"


def load_cluster(config: Path, environment: str, settings: Settings) -> Cluster:
    """The environment's table of deploy.toml; errors name the key."""
    tables = load_section(config, "kubernetes", _KEYS)
    if environment not in tables:
        raise UsageError(f"{config} has no [kubernetes.{environment}] table"
                         f" (known: {', '.join(tables)})")
    table = tables[environment]
    prefix = f"kubernetes.{environment}"
    context = settings.kube_context or table["context"]
    namespace = settings.kube_namespace or table["namespace"]
    if not context:
        raise UsageError(f"no kube context: set KUBE_CONTEXT or {prefix}.context in {config}")
    for key, value in (("namespace", namespace), ("release", table["release"])):
        if not _NAME.match(value) or len(value) > 53:
            raise UsageError(f"{config}: {prefix}.{key} {value!r} is not a DNS label"
                             " (a-z, 0-9 and '-', at most 53)")
    if table["timeout_seconds"] < 30:
        raise UsageError(f"{config}: {prefix}.timeout_seconds must be at least 30")
    values = CHART / table["values"]
    if not values.is_file():
        raise UsageError(f"{config}: {prefix}.values: {values} is not a file")
    return Cluster(environment, context, namespace, table["release"], table["timeout_seconds"],
                   values, str(table["url"]).rstrip("/"))


def git_commit() -> str:
    try:
        result = subprocess.run(  # nosec B603 B607: git from PATH, fixed arguments
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        result = None
    if result is None or result.returncode != 0 or not result.stdout.strip():
        raise UsageError("no git commit to tag the image with: pass --image-tag")
    return result.stdout.strip()


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is not None:
        return found
    bundled = TOOLS_BIN / name
    if bundled.is_file():
        return str(bundled)
    raise UsageError(f"{name} is not installed: run {INSTALL_HINT}")


def run_tool(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run helm or kubectl (argv[0] is its name); KUBECONFIG reaches it through the environment."""
    try:
        return subprocess.run(  # nosec B603: helm or kubectl, argv list
            [tool(argv[0]), *argv[1:]], capture_output=True, text=True, check=False,
            timeout=timeout, stdin=subprocess.DEVNULL, env=os.environ,
        )
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"{argv[0]} {argv[1]} did not finish in {timeout:g}s") from None


def last_lines(text: str, count: int = 5) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-count:] if line.strip())


def schema_problems(output: str) -> list[str]:
    """`helm lint` schema errors as `key.path: message`, the key prefixed with its chart."""
    problems, chart = [], ""
    for line in output.splitlines():
        heading = re.match(r"^([A-Za-z0-9_-]+):\s*$", line)
        problem = re.match(r"^- (\S+): (.*)$", line)
        if heading:
            chart = "" if heading.group(1) == CHART.name else heading.group(1) + "."
        elif problem:
            path, message = problem.groups()
            extra = re.match(r"Additional property (\S+) is not allowed", message)
            if path == "(root)":
                path = extra.group(1) if extra else ""
            elif extra:
                path = f"{path}.{extra.group(1)}"
            problems.append(f"{chart}{path}".rstrip(".") + f": {message}")
    return problems


@dataclass
class RollbackChoice:
    """What a rollback's `history` step hands its `rollback` step: the revision to return to
    (--to, or the last one that served before the current one, found in the history)."""

    to_revision: int | None = None
    replaced_job: int | None = None  # the recorded job that deployed the revision replaced


class KubernetesTarget(Target):
    name = "kubernetes"
    summary = "a Helm release of helm/textbook-stack on the cluster of deploy.toml's kube context"
    services = ("backend",)
    own_options = (
        Option("image_tag", "kubernetes: the image tag to deploy (default: the git commit)",
               None, "TAG"),
        Option("image_digest", "kubernetes: the digest (sha256:...) of the --prebuilt-image the"
               " pods pin (a deploy that builds pins the digest its push read back)", None,
               "DIGEST"),
        Option("prebuilt_image", "kubernetes: deploy an image already pushed (no build-image"
               " step)", False),
    )

    def __init__(self, settings: Settings, options: Mapping[str, OptionValue]) -> None:
        super().__init__(settings, options)
        self.cluster = load_cluster(DEPLOY_CONFIG, self.environment, settings)
        self.image_digest = str(options.get("image_digest") or "")
        if self.image_digest and not _DIGEST.match(self.image_digest):
            raise UsageError(f"--image-digest {self.image_digest!r} is not sha256:<64 hex>")
        if self.image_digest and not options.get("prebuilt_image"):
            raise UsageError("--image-digest names an image already pushed: it goes with"
                             " --prebuilt-image (a deploy that builds pins its own push)")
        # Who is named when another run finds the release pending (see the lock step).
        self.holder = os.environ.get("GITHUB_ACTOR") or getpass.getuser()

    @cached_property
    def image_tag(self) -> str:
        """--image-tag, or the git commit (only a deploy needs one)."""
        tag = str(self.options.get("image_tag") or git_commit())
        if not _TAG.match(tag):
            raise UsageError(f"--image-tag {tag!r} is not a valid image tag")
        return tag

    def context(self) -> dict[str, str]:
        c = self.cluster
        return {**super().context(), "context": c.context, "namespace": c.namespace,
                "release": c.release}

    def health_url(self, service: str) -> str | None:
        return f"{self.cluster.url}/ready" if self.cluster.url else None

    # Commands, exactly as they run (and as the plan prints them).

    def _image_values(self, digest: str, repository: str | None = None) -> list[str]:
        """The image the pods run: the values file's repository (or the one this run pushed
        to), the tag, and the digest that pins it when one is known."""
        values = [] if repository is None else ["--set", f"backend.image.repository={repository}"]
        values += ["--set", f"backend.image.tag={self.image_tag}"]
        if digest:
            values += ["--set", f"backend.image.digest={digest}"]
        return values

    def lint_argv(self) -> list[str]:
        return ["helm", "lint", "--strict", str(CHART), "-f", str(self.cluster.values),
                *self._image_values(self.image_digest)]

    def description(self, job: int | str | None) -> str:
        """The revision's description: what was deployed, by whom, and the run's recorded job,
        which `helm history` shows and a later rollback reads back to mark that job rolled
        back (the release itself remembers it, as a local release's metadata does)."""
        text = f"deploy-backend {self.image_tag[:12]} by {self.holder}"
        return text if job is None else f"{text} (job {job})"

    def upgrade_argv(self, job: int | str | None, image_values: list[str]) -> list[str]:
        c = self.cluster
        return ["helm", "upgrade", "--install", c.release, str(CHART), "--namespace", c.namespace,
                "--create-namespace", "--atomic", "--wait", "--timeout", f"{c.timeout_seconds}s",
                "-f", str(c.values), *image_values,
                "--description", self.description(job), "--kube-context", c.context]

    def rollback_argv(self, revision: str) -> list[str]:
        c = self.cluster
        return ["helm", "rollback", c.release, revision, "--namespace", c.namespace, "--wait",
                "--timeout", f"{c.timeout_seconds}s", "--kube-context", c.context]

    def history_argv(self, latest_only: bool) -> list[str]:
        c = self.cluster
        return ["helm", "history", c.release, "--namespace", c.namespace, "--kube-context",
                c.context, *(["--max", "1"] if latest_only else []), "--output", "json"]

    def _kubectl(self, *args: str) -> list[str]:
        return ["kubectl", "--context", self.cluster.context, *args]

    # Steps.

    def _step(self, name: str, argv: list[str], fail: str, timeout: float) -> Step:
        def act(run: Run) -> None:
            result = run_tool(argv, timeout)
            if result.returncode != 0:
                raise OperationFailed(f"{fail}: {last_lines(result.stderr or result.stdout)}")
            if result.stdout.strip():
                run.console.print(f"    {last_lines(result.stdout, 3)[:300]}")

        return Step(name, shlex.join(argv), act)

    def _chart_steps(self) -> list[Step]:
        argv = self.lint_argv()

        def lint(run: Run) -> None:
            result = run_tool(argv, READ_SECONDS)
            if result.returncode == 0:
                return
            output = result.stdout + result.stderr
            problems = schema_problems(output)
            errors = [line for line in output.splitlines() if line.startswith("[ERROR]")]
            where = self.cluster.values.name
            if problems:
                raise UsageError(f"{where} breaks the chart's values schema: "
                                 + "; ".join(problems))
            raise UsageError(f"helm lint refused the chart with {where}: "
                             f"{last_lines(chr(10).join(errors) or output)}")

        return [
            self._step("dependencies", ["helm", "dependency", "build", str(CHART)],
                       "helm could not assemble the chart's subcharts", READ_SECONDS * 2),
            Step("lint", shlex.join(argv), lint),
        ]

    def _cluster_steps(self) -> list[Step]:
        c = self.cluster
        contexts_argv = ["kubectl", "config", "get-contexts", "--output", "name"]
        readyz_argv = self._kubectl("get", "--raw", "/readyz")
        lock_argv = self.history_argv(latest_only=True)

        def context(run: Run) -> None:
            result = run_tool(contexts_argv, READ_SECONDS)
            known = result.stdout.split()
            if result.returncode != 0 or c.context not in known:
                found = ", ".join(known) or "none"
                raise UsageError(f"no kube context {c.context!r} in KUBECONFIG (found: {found})")

        def reachable(run: Run) -> None:
            result = run_tool(readyz_argv, READ_SECONDS)
            if result.returncode != 0:
                raise OperationFailed(f"cluster unreachable through context {c.context}:"
                                      f" {last_lines(result.stderr, 1)}")

        def lock(run: Run) -> None:
            result = run_tool(lock_argv, READ_SECONDS)
            if result.returncode != 0:
                if "not found" in result.stderr:
                    run.console.print(f"    no release {c.release} yet: a first install")
                    return
                raise OperationFailed(f"helm history failed: {last_lines(result.stderr)}")
            latest = _revisions(result.stdout)[-1:]
            if latest and latest[0].get("status") in PENDING:
                held = latest[0]
                raise LockHeld(
                    f"release {c.release} in {c.namespace} is held by another run: revision"
                    f" {held.get('revision')} is {held.get('status')} since {held.get('updated')}"
                    f" ({held.get('description') or 'no description'})"
                )

        return [
            Step("context", shlex.join(contexts_argv), context),
            Step("cluster", shlex.join(readyz_argv), reachable),
            Step("lock", f"{shlex.join(lock_argv)}: refuse while a revision is pending-*", lock),
        ]

    def _verify_steps(self, pinned: Callable[[], str] | None) -> list[Step]:
        """Rollout, readiness through the Service, and the revision recorded (with the image
        this run deployed, if it deployed one, and the digest `pinned` gives: a rollback
        returns to the revision's own)."""
        c = self.cluster
        ready_path = (f"/api/v1/namespaces/{c.namespace}/services/{c.deployment}:http"
                      "/proxy/ready")
        history = self.history_argv(latest_only=True)

        def record(run: Run) -> None:
            result = run_tool(history, READ_SECONDS)
            latest = _revisions(result.stdout)[-1:] if result.returncode == 0 else []
            if not latest:
                raise OperationFailed(f"helm history failed: {last_lines(result.stderr)}")
            release = latest[0]
            folder = self.settings.data_dir / "artifacts" / "kubernetes"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{c.release}-{c.environment}-r{release.get('revision')}.json"
            path.write_text(json.dumps({
                "release": c.release, "namespace": c.namespace, "context": c.context,
                "revision": release.get("revision"), "chart": release.get("chart"),
                "app_version": release.get("app_version"), "status": release.get("status"),
                "description": release.get("description"),
                **({"image_tag": self.image_tag, "image_digest": pinned() or None}
                   if pinned is not None else {}),
                "recorded_at": datetime.now(UTC).isoformat(),
            }, indent=2) + "\n", encoding="utf-8")
            run.console.print(f"    {c.release} revision {release.get('revision')}"
                              f" ({release.get('chart')}) is {release.get('status')}")
            run.artifact("helm-release", path)

        return [
            self._step("rollout", self._kubectl("--namespace", c.namespace, "rollout", "status",
                                                f"deployment/{c.deployment}",
                                                f"--timeout={c.timeout_seconds}s"),
                       "the rollout did not complete", c.timeout_seconds + GRACE_SECONDS),
            self._step("ready", self._kubectl("get", "--raw", ready_path),
                       "the API is not ready through its Service", READ_SECONDS),
            Step("record", f"{shlex.join(history)}: record revision, chart and image", record),
        ]

    def _helm_change(self, run: Run, argv: list[str], verb: str) -> None:
        c = self.cluster
        # --atomic: after its own --timeout, helm rolls back and waits up to that long
        # again; killing it before would leave the release pending (locked) for good.
        result = run_tool(argv, 2 * c.timeout_seconds + GRACE_SECONDS)
        if result.returncode == 0:
            run.console.print(f"    {last_lines(result.stdout, 2)[:300]}")
            return
        if "another operation" in result.stderr and "in progress" in result.stderr:
            raise LockHeld(f"release {c.release} in {c.namespace}: {last_lines(result.stderr)}")
        raise OperationFailed(f"helm {verb} failed: {last_lines(result.stderr)}")

    def _upgrade_step(self, build: ImageBuild | None, pinned: Callable[[], str]) -> Step:
        repository = build.repository if build is not None else None
        shown = self._image_values("<pushed digest>" if build else self.image_digest, repository)

        def upgrade(run: Run) -> None:
            job = run.recorder.job_id if run.recorder is not None else None
            argv = self.upgrade_argv(job, self._image_values(pinned(), repository))
            self._helm_change(run, argv, "upgrade")

        return Step("upgrade", shlex.join(self.upgrade_argv("<recorded job>", shown)), upgrade)

    def _image_build(self) -> tuple[ImageBuild | None, list[Step]]:
        """None and no steps for --prebuilt-image; else build-image --push of image_tag."""
        if self.options.get("prebuilt_image"):
            return None, []
        return pushed_build(self.settings, environment=self.environment, tag=self.image_tag)

    def deploy_steps(self, service: str) -> list[Step]:
        build, build_steps = self._image_build()

        def pinned() -> str:
            """The digest the pods pin: the one this run's push read back, else --image-digest."""
            return build.pushed_digest if build is not None else self.image_digest

        return [
            *self._chart_steps(),
            *self._cluster_steps(),
            *build_steps,
            self._upgrade_step(build, pinned),
            *self._verify_steps(pinned),
        ]

    # Rollback.

    def rollback_steps(self, service: str, to: str | None) -> list[Step]:
        c = self.cluster
        if to is not None and not (to.isdigit() and int(to) > 0):
            raise UsageError(f"--to takes a Helm revision number, not {to!r}")
        state = RollbackChoice(to_revision=int(to) if to else None)
        history = self.history_argv(latest_only=False)
        rollback = self.rollback_argv(to or "<previous revision>")

        def choose(run: Run) -> None:
            result = run_tool(history, READ_SECONDS)
            if result.returncode != 0:
                raise OperationFailed(f"helm history failed: {last_lines(result.stderr)}")
            revisions = _revisions(result.stdout)
            deployed = [r for r in revisions if r.get("status") == "deployed"]
            if not deployed:
                raise UsageError(f"release {c.release} has no deployed revision to roll back")
            current = int(deployed[-1]["revision"])
            named = _JOB.search(str(deployed[-1].get("description") or ""))
            state.replaced_job = int(named.group(1)) if named else None
            numbers = {int(r["revision"]) for r in revisions}
            if state.to_revision is None:
                earlier = [int(r["revision"]) for r in revisions
                           if r.get("status") == "superseded" and int(r["revision"]) < current]
                if not earlier:
                    raise UsageError(f"release {c.release} has no earlier revision that served")
                state.to_revision = earlier[-1]
            elif state.to_revision not in numbers:
                raise UsageError(f"release {c.release} has no revision {state.to_revision}"
                                 f" (revisions: {', '.join(map(str, sorted(numbers)))})")
            elif state.to_revision == current:
                raise UsageError(f"revision {current} of {c.release} is already deployed")
            run.console.print(f"    from revision {current} back to {state.to_revision}")

        def roll_back(run: Run) -> None:
            revision = str(state.to_revision)
            self._helm_change(run, self.rollback_argv(revision), "rollback")

        def mark(run: Run) -> None:
            if state.replaced_job is not None and run.recorder is not None:
                run.recorder.mark_rolled_back(state.replaced_job)

        return [
            *self._cluster_steps(),
            Step("history", f"{shlex.join(history)}: choose the revision", choose),
            Step("rollback", shlex.join(rollback), roll_back),
            *self._verify_steps(None),
            Step("mark", "mark the job that deployed the replaced revision (its description"
                 " names it) rolled back", mark),
        ]

    def history_lines(self, service: str) -> list[str]:
        result = run_tool(self.history_argv(latest_only=False), READ_SECONDS)
        if result.returncode != 0:
            return [f"helm history {self.cluster.release}: {last_lines(result.stderr, 1)}"]
        return [
            f"{r.get('revision')}\t{r.get('updated')}\t{r.get('status')}\t{r.get('chart')}"
            f"\t{r.get('description')}" for r in _revisions(result.stdout)
        ]


def _revisions(text: str) -> list[dict[str, Any]]:
    """`helm history --output json`: the revisions, oldest first."""
    try:
        data = json.loads(text or "[]")
    except json.JSONDecodeError:
        raise OperationFailed(f"helm history printed no JSON: {text[:200]!r}") from None
    if not isinstance(data, list):
        raise OperationFailed("helm history printed no list of revisions")
    return sorted((r for r in data if isinstance(r, dict) and "revision" in r),
                  key=lambda r: int(r["revision"]))
