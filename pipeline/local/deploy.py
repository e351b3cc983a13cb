"""Steps shared by the local target's operations: locks, the backend switch, the site switch."""

from __future__ import annotations

import os
import shutil
import subprocess  # nosec B404: uv with fixed arguments
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from pipeline.artifacts import digest
from pipeline.core import Operation, OptionValue, Option, Run, Step
from pipeline.errors import OperationFailed, UsageError
from pipeline.local import keeper, server
from pipeline.local.releases import Layout, Release, current, find, new_release, prune, switch
from pipeline.locks import file_lock
from textbook_api.config import Settings

TARGETS = ("local",)
LEASE_RENEW_SECONDS = 5
DRAIN_SECONDS = 30

TARGET_OPTIONS = (
    Option("target", f"where to deploy (known: {', '.join(TARGETS)})", "local", "TARGET"),
    Option("environment", "environment to deploy (default: ENVIRONMENT)", None, "NAME"),
    Option("port", "stable loopback port of the local stack (default: LOCAL_PORT)", None, "PORT"),
    Option("lock_timeout", "seconds to wait for another deploy's lock", 10, "SECONDS"),
)
GATE_OPTIONS = (
    Option("health_attempts", "readiness probes before the release is refused", 60, "N"),
    Option("health_interval_ms", "pause between readiness probes", 250, "MS"),
    Option("health_timeout_ms", "time each readiness probe may take", 2000, "MS"),
)
KEEP_OPTION = Option("keep", "releases kept per service (current and rollback target always)", 5,
                     "N")


class Target:
    """The validated target options of one run."""

    def __init__(self, settings: Settings, options: Mapping[str, OptionValue]) -> None:
        if options["target"] not in TARGETS:
            raise UsageError(
                f"unknown target {options['target']!r} (known: {', '.join(TARGETS)})"
            )
        self.settings = settings
        self.environment = str(options["environment"] or settings.environment)
        self.port = int(options["port"] or settings.local_port)
        if not 1 <= self.port <= 65535:
            raise UsageError("--port must be between 1 and 65535")
        self.lock_timeout = int(options["lock_timeout"] or 0)
        self.layout = Layout.of(settings.data_dir, self.environment)
        self.gate = server.Gate(
            attempts=int(options.get("health_attempts") or 60),
            interval=int(options.get("health_interval_ms") or 250) / 1000,
            timeout=int(options.get("health_timeout_ms") or 2000) / 1000,
        )
        if self.gate.attempts < 1:
            raise UsageError("--health-attempts must be at least 1")

    def check_port(self) -> None:
        keeper.check_port("127.0.0.1", self.port, self.layout.control)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def context(self) -> dict[str, str]:
        return {"environment": self.environment, "target": "local", "url": self.url}


def lock_step(target: Target, service: str) -> Step:
    path = target.layout.lock(service)

    def take(run: Run) -> None:
        stale = run.resources.enter_context(
            file_lock(path, f"deploy {service}", target.lock_timeout,
                      renew_seconds=LEASE_RENEW_SECONDS)
        )
        if stale is not None:
            message = f"recovered the stale {service} lock left by {stale} (holder gone)"
            run.console.print(f"    {message}")
            if run.recorder is not None:
                run.recorder.note(message, step="lock")

    return Step("lock", f"flock {path} (lease renewed every {LEASE_RENEW_SECONDS}s)", take)


def uv() -> str:
    found = shutil.which("uv")
    if found is None:
        raise UsageError("uv is not on PATH: pip install -r requirements/bootstrap.txt")
    return found


def _uv(*args: str) -> str:
    result = subprocess.run(  # nosec B603: uv with fixed arguments
        [uv(), *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise OperationFailed(f"uv {args[0]} failed: {result.stderr.strip()[-2000:]}")
    return result.stdout


def build_and_install_steps(target: Target) -> list[Step]:
    """The wheel, then a release folder with its own environment from it and the lock."""
    backend_dir = target.settings.backend_dir
    scratch = Path(tempfile.mkdtemp(prefix="deploy-backend-"))

    def build(run: Run) -> None:
        run.resources.callback(shutil.rmtree, scratch, ignore_errors=True)
        _uv("build", "--wheel", "--quiet", "--out-dir", str(scratch), str(backend_dir))
        wheels = sorted(scratch.glob("*.whl"))
        if len(wheels) != 1:
            raise OperationFailed(f"expected one wheel from {backend_dir}, got {len(wheels)}")
        run.state["wheel"] = wheels[0]
        run.artifact("wheel", wheels[0])

    def prepare(run: Run) -> None:
        wheel: Path = run.state["wheel"]
        exported = _uv("export", "--frozen", "--quiet", "--no-hashes", "--no-dev",
                       "--no-emit-workspace", "--no-emit-project", "--package", "textbook-api")
        pins = "".join(line + "\n" for line in exported.splitlines() if not line.startswith("#"))
        requirements = scratch / "requirements.txt"
        requirements.write_text(pins, encoding="utf-8")
        sha256 = digest(wheel).sha256
        locked = digest(requirements).sha256
        release = new_release(target.layout, "backend", sha256[:12], wheel=wheel.name,
                              wheel_sha256=sha256, requirements_sha256=locked)
        run.on_failure(f"mark release {release.id} failed", lambda: release.update(state="failed"))
        venv = release.path / "venv"
        python = str(venv / "bin" / "python")
        base = current(target.layout, "backend")
        if base is not None and base.meta.get("requirements_sha256") == locked:
            # Same locked dependencies: hard-link the current release's environment (compiled
            # bytecode included) instead of installing it again. Installs replace files, never
            # rewrite them, so the two releases cannot change each other.
            shutil.copytree(base.path / "venv", venv, symlinks=True, copy_function=os.link)
            reused = f", environment linked from {base.id}"
        else:
            _uv("venv", "--quiet", "--python", sys.executable, str(venv))
            _uv("pip", "install", "--quiet", "--compile-bytecode", "--python", python, "-r",
                str(requirements))
            reused = ""
        _uv("pip", "install", "--quiet", "--compile-bytecode", "--no-deps", "--reinstall",
            "--python", python, str(wheel))
        run.state["release"] = release
        run.console.print(f"    release {release.id}{reused}")

    return [
        Step("build", f"uv build --wheel {backend_dir}", build),
        Step("prepare", "uv venv + uv pip install (locked) into"
             f" {target.layout.releases('backend')}/<new>", prepare),
    ]


def release_env(target: Target) -> dict[str, str]:
    env = {
        **os.environ,
        "ENVIRONMENT": target.environment,
        "DATA_DIR": str(target.settings.data_dir.resolve()),
        "SITE_DIR": str(target.layout.site_dir),
    }
    if target.settings.database_url is None:  # pin the default SQLite file before cwd changes
        env["DATABASE_URL"] = target.settings.sqlalchemy_url
    return env


def backend_switch_steps(target: Target, chosen: Callable[[Run], Release]) -> list[Step]:
    """Start the release privately, gate it on /ready, switch it in, drain the old one."""
    layout = target.layout

    def start(run: Run) -> None:
        release = chosen(run)
        shared = keeper.ensure("127.0.0.1", target.port, layout.control,
                               layout.root / "keeper.log")
        run.resources.callback(shared.close)
        started = server.start(release, shared, release_env(target))
        run.state["started"] = started
        run.on_failure(
            f"stop release {release.id} unless it was switched in",
            lambda: None if run.state.get("switched") else server.stop(started.pid, 10),
        )
        run.console.print(f"    pid {started.pid}, private port {started.private_port}")

    def gate(run: Run) -> None:
        answer = server.gate(run.state["started"], target.gate)
        run.console.print(f"    {answer[:120]}")

    def switch_in(run: Run) -> None:
        release, started = chosen(run), run.state["started"]
        run.state["previous"] = server.running(layout)
        server.switch_in(started, release, layout)
        run.state["switched"] = True
        switch(layout, "backend", release)
        release.go_live(run.recorder.job_id if run.recorder else None)
        run.console.print(f"    serving {release.id} at {target.url}")

    def drain(run: Run) -> None:
        previous: server.Running | None = run.state["previous"]
        if previous is None:
            run.console.print("    no previous release was serving")
            return
        server.stop(previous.pid, DRAIN_SECONDS)
        retired = find(layout, "backend", previous.release)
        if retired is not None and retired.id != chosen(run).id:
            retired.update(state="retired")
        run.console.print(f"    stopped release {previous.release} (pid {previous.pid})")

    return [
        Step("start", "start the release on a private loopback port", start),
        Step("gate", f"GET {target.gate.path} until 2xx (at most {target.gate.attempts} tries,"
             f" every {target.gate.interval:g}s)", gate),
        Step("switch", f"accept on 127.0.0.1:{target.port} beside the previous release",
             switch_in),
        Step("drain", "SIGTERM the previous release: it finishes its requests and exits"
             f" (killed after {DRAIN_SECONDS}s)", drain),
    ]


def keep_releases(options: Mapping[str, OptionValue]) -> int:
    keep = int(options["keep"] or 0)
    if keep < 1:
        raise UsageError("--keep must be at least 1")
    return keep


def prune_step(target: Target, service: str, keep: int) -> Step:
    def remove(run: Run) -> None:
        removed = prune(target.layout, service, keep)
        run.console.print(f"    removed {len(removed)} old release(s)")

    return Step("prune", f"keep the newest {keep} {service} releases", remove)


def site_steps(target: Target, build_dir: Path) -> list[Step]:
    """Copy a built site into a new release and swap the `current` symlink to it."""

    def copy(run: Run) -> None:
        if not (build_dir / "index.html").is_file():
            raise OperationFailed(f"{build_dir} holds no built site (index.html missing)")
        release = new_release(target.layout, "frontend", "site")
        run.on_failure(f"mark release {release.id} failed", lambda: release.update(state="failed"))
        shutil.copytree(build_dir, release.path / "site")
        run.state["site_release"] = release
        run.artifact("static-site", release.path / "site")

    return [
        Step("copy", f"copy {build_dir} into {target.layout.releases('frontend')}/<new>", copy),
        site_switch_step(target, lambda run: run.state["site_release"], "<new>"),
    ]


def site_switch_step(target: Target, chosen: Callable[[Run], Release], name: str) -> Step:
    def swap(run: Run) -> None:
        release = chosen(run)
        previous = current(target.layout, "frontend")
        switch(target.layout, "frontend", release)
        if previous is not None and previous.id != release.id:
            previous.update(state="retired")
        release.go_live(run.recorder.job_id if run.recorder else None)
        run.console.print(f"    serving {release.id}")

    return Step("switch", f"ln -sfn {name} {target.layout.current_link('frontend')}", swap)


def composed(operation: Operation, settings: Settings, **options: OptionValue) -> list[Step]:
    """Another operation's steps, prefixed with its name, to run inside this plan."""
    steps = operation.plan(settings, operation.defaults(**options)).steps
    return [Step(f"{operation.name}:{s.name}", s.describe, s.action) for s in steps]
