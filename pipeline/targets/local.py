"""The local target: releases on this host behind one loopback port, no failed request on switch.

A keeper process holds the listening socket of 127.0.0.1:LOCAL_PORT and every API release accepts
from it, so the old release drains while the new one already accepts. The site is a release
folder the API serves at `/`, switched by a symlink swap.
"""

from __future__ import annotations

import os
import shutil
import subprocess  # nosec B404: uv with fixed arguments
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.artifacts import digest
from pipeline.core import Option, OptionValue, Run, Step, composed
from pipeline.errors import OperationFailed, UsageError
from pipeline.local import keeper, server
from pipeline.local.releases import (
    Layout,
    Release,
    current,
    find,
    new_release,
    previous_served,
    prune,
    switch,
)
from pipeline.targets.base import Target
from textbook_api.config import Settings

DRAIN_SECONDS = 30
# The local stack serves the site and the API on one origin: build with that profile.
LOCAL_PROFILE = "local"


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


@dataclass
class BackendSwitch:
    """What the backend's steps hand each other during one deploy or rollback."""

    wheel: Path | None = None
    release: Release | None = None
    started: server.Running | None = None
    previous: server.Running | None = None
    switched: bool = False
    replaced: Release | None = None  # the release a rollback takes out of service

    def chosen(self) -> Release:
        if self.release is None:
            raise OperationFailed("no release was prepared")
        return self.release


class LocalTarget(Target):
    name = "local"
    summary = "this host: releases behind one loopback port, health-gated"
    services = ("backend", "frontend")
    own_options = (
        Option("port", "stable loopback port of the local stack (default: LOCAL_PORT)", None,
               "PORT"),
    )

    def __init__(self, settings: Settings, options: Mapping[str, OptionValue]) -> None:
        super().__init__(settings, options)
        self.port = int(options.get("port") or settings.local_port)
        if not 1 <= self.port <= 65535:
            raise UsageError("--port must be between 1 and 65535")
        self.layout = Layout.of(settings.data_dir, self.environment)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def context(self) -> dict[str, str]:
        return {**super().context(), "url": self.url}

    def health_url(self, service: str) -> str | None:
        return self.url + ("ready" if service == "backend" else "")

    def preflight(self, services: tuple[str, ...]) -> None:
        if "backend" in services:
            keeper.check_port("127.0.0.1", self.port, self.layout.control)
            uv()

    def _keep(self) -> int:
        keep = int(self.options.get("keep") or 0)
        if keep < 1:
            raise UsageError("--keep must be at least 1")
        return keep

    # Deploy.

    def deploy_steps(self, service: str) -> list[Step]:
        keep = self._keep()
        if service == "backend":
            # Imported here: the operations import the target registry at load time.
            from pipeline.operations import run_migrations

            state = BackendSwitch()
            steps = [
                self.lock_step(service),
                *self._build_and_install_steps(state),
                *composed(run_migrations.OPERATION, self.settings),
                *self._backend_switch_steps(state),
            ]
        else:
            from pipeline.operations import build_frontend

            # The site is built for the port this stack serves it on (its canonical URLs).
            served_here = self.settings.model_copy(update={"local_port": self.port})
            build = [] if self.options.get("prebuilt") else composed(
                build_frontend.OPERATION, served_here, environment=LOCAL_PROFILE
            )
            steps = [
                self.lock_step(service),
                *build,
                *self._site_steps(self.settings.site_build_dir),
            ]
        return [*steps, self._prune_step(service, keep)]

    def lock_step(self, service: str) -> Step:
        locked = super().lock_step(service)
        if service != "backend":
            return locked

        def take(run: Run) -> None:
            locked.action(run)
            # Under the lock no other deploy is starting a release: any release process not
            # recorded as serving was left by a run that died.
            for orphan in server.stop_orphans(self.layout):
                run.console.print(f"    stopped orphaned release {orphan.release}"
                                  f" (pid {orphan.pid}) left by a run that died")

        return Step(locked.name, f"{locked.describe}; stop orphaned releases", take)

    def _build_and_install_steps(self, state: BackendSwitch) -> list[Step]:
        """The wheel, then a release folder with its own environment from it and the lock."""
        backend_dir = self.settings.backend_dir
        scratch = Path(tempfile.mkdtemp(prefix="deploy-backend-"))

        def build(run: Run) -> None:
            run.resources.callback(shutil.rmtree, scratch, ignore_errors=True)
            _uv("build", "--wheel", "--quiet", "--out-dir", str(scratch), str(backend_dir))
            wheels = sorted(scratch.glob("*.whl"))
            if len(wheels) != 1:
                raise OperationFailed(f"expected one wheel from {backend_dir}, got {len(wheels)}")
            state.wheel = wheels[0]
            run.artifact("wheel", wheels[0])

        def prepare(run: Run) -> None:
            if state.wheel is None:
                raise OperationFailed("no wheel was built")
            wheel = state.wheel
            exported = _uv("export", "--frozen", "--quiet", "--no-hashes", "--no-dev",
                           "--no-emit-workspace", "--no-emit-project", "--package",
                           "textbook-api")
            pins = "".join(line + "\n" for line in exported.splitlines()
                           if not line.startswith("#"))
            requirements = scratch / "requirements.txt"
            requirements.write_text(pins, encoding="utf-8")
            sha256 = digest(wheel).sha256
            locked = digest(requirements).sha256
            release = new_release(self.layout, "backend", sha256[:12], wheel=wheel.name,
                                  wheel_sha256=sha256, requirements_sha256=locked)
            run.on_failure(f"mark release {release.id} failed",
                           lambda: release.update(state="failed"))
            venv = release.path / "venv"
            python = str(venv / "bin" / "python")
            base = current(self.layout, "backend")
            if base is not None and base.meta.get("requirements_sha256") == locked:
                # Same locked dependencies: hard-link the current release's environment
                # (compiled bytecode included) instead of installing it again. Installs replace
                # files, never rewrite them, so the two releases cannot change each other.
                shutil.copytree(base.path / "venv", venv, symlinks=True, copy_function=os.link)
                reused = f", environment linked from {base.id}"
            else:
                _uv("venv", "--quiet", "--python", sys.executable, str(venv))
                _uv("pip", "install", "--quiet", "--compile-bytecode", "--python", python, "-r",
                    str(requirements))
                reused = ""
            _uv("pip", "install", "--quiet", "--compile-bytecode", "--no-deps", "--reinstall",
                "--python", python, str(wheel))
            state.release = release
            run.console.print(f"    release {release.id}{reused}")

        return [
            Step("build", f"uv build --wheel {backend_dir}", build),
            Step("prepare", "uv venv + uv pip install (locked) into"
                 f" {self.layout.releases('backend')}/<new>", prepare),
        ]

    def release_env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "ENVIRONMENT": self.environment,
            "DATA_DIR": str(self.settings.data_dir.resolve()),
            "SITE_DIR": str(self.layout.site_dir),
        }
        if self.settings.database_url is None:  # pin the default SQLite file before cwd changes
            env["DATABASE_URL"] = self.settings.sqlalchemy_url
        return env

    def _backend_switch_steps(self, state: BackendSwitch) -> list[Step]:
        """Start the release privately, gate it on /ready, switch it in, drain the old one."""
        layout = self.layout

        def start(run: Run) -> None:
            release = state.chosen()
            shared = keeper.ensure("127.0.0.1", self.port, layout.control,
                                   layout.root / "keeper.log")
            run.resources.callback(shared.close)
            started = server.start(release, shared, self.release_env())
            state.started = started
            run.on_failure(
                f"stop release {release.id} unless it was switched in",
                lambda: None if state.switched else server.stop(started.pid, 10),
            )
            run.console.print(f"    pid {started.pid}, private port {started.private_port}")

        def gate(run: Run) -> None:
            if state.started is None:
                raise OperationFailed("no release was started")
            answer = server.gate(state.started, self.gate)
            run.console.print(f"    {answer[:120]}")

        def switch_in(run: Run) -> None:
            release, started = state.chosen(), state.started
            if started is None:
                raise OperationFailed("no release was started")
            state.previous = server.running(layout)
            server.switch_in(started, release, layout)
            state.switched = True
            switch(layout, "backend", release)
            release.go_live(run.recorder.job_id if run.recorder else None)
            run.console.print(f"    serving {release.id} at {self.url}")

        def drain(run: Run) -> None:
            previous = state.previous
            if previous is None:
                run.console.print("    no previous release was serving")
                return
            server.stop(previous.pid, DRAIN_SECONDS)
            retired = find(layout, "backend", previous.release)
            if retired is not None and retired.id != state.chosen().id:
                retired.update(state="retired")
            run.console.print(f"    stopped release {previous.release} (pid {previous.pid})")

        return [
            Step("start", "start the release on a private loopback port", start),
            Step("gate", self.gate.describe(), gate),
            Step("switch", f"accept on 127.0.0.1:{self.port} beside the previous release",
                 switch_in),
            Step("drain", "SIGTERM the previous release: it finishes its requests and exits"
                 f" (killed after {DRAIN_SECONDS}s)", drain),
        ]

    def _prune_step(self, service: str, keep: int) -> Step:
        def remove(run: Run) -> None:
            removed = prune(self.layout, service, keep)
            run.console.print(f"    removed {len(removed)} old release(s)")

        return Step("prune", f"keep the newest {keep} {service} releases", remove)

    def _site_steps(self, build_dir: Path) -> list[Step]:
        """Copy a built site into a new release and swap the `current` symlink to it."""
        state = BackendSwitch()

        def copy(run: Run) -> None:
            if not (build_dir / "index.html").is_file():
                raise OperationFailed(f"{build_dir} holds no built site (index.html missing)")
            release = new_release(self.layout, "frontend", "site")
            run.on_failure(f"mark release {release.id} failed",
                           lambda: release.update(state="failed"))
            shutil.copytree(build_dir, release.path / "site")
            state.release = release
            run.artifact("static-site", release.path / "site")

        return [
            Step("copy", f"copy {build_dir} into {self.layout.releases('frontend')}/<new>", copy),
            self._site_switch_step(state.chosen, "<new>"),
        ]

    def _site_switch_step(self, chosen: Callable[[], Release], name: str) -> Step:
        def swap(run: Run) -> None:
            release = chosen()
            previous = current(self.layout, "frontend")
            switch(self.layout, "frontend", release)
            if previous is not None and previous.id != release.id:
                previous.update(state="retired")
            release.go_live(run.recorder.job_id if run.recorder else None)
            run.console.print(f"    serving {release.id}")

        return Step("switch", f"ln -sfn {name} {self.layout.current_link('frontend')}", swap)

    # Rollback.

    def rollback_steps(self, service: str, to: str | None) -> list[Step]:
        state = BackendSwitch(release=self._rollback_release(service, to))

        def remember(run: Run) -> None:
            state.replaced = current(self.layout, service)

        def mark(run: Run) -> None:
            replaced = state.replaced
            if replaced is not None and run.recorder is not None and replaced.meta.get("job_id"):
                run.recorder.mark_rolled_back(int(replaced.meta["job_id"]))

        switch_steps = (self._backend_switch_steps(state) if service == "backend"
                        else [self._site_switch_step(state.chosen, state.chosen().id)])
        return [
            self.lock_step(service),
            Step("current", f"note the current {service} release", remember),
            *switch_steps,
            Step("mark", f"mark the job that deployed the replaced {service} release rolled"
                 " back", mark),
        ]

    def _rollback_release(self, service: str, wanted: str | None) -> Release:
        release = (find(self.layout, service, wanted) if wanted
                   else previous_served(self.layout, service))
        folder = self.layout.releases(service)
        if release is None:
            if wanted:
                raise UsageError(f"no {service} release {wanted!r} to roll back to in {folder}")
            raise UsageError(
                f"no earlier {service} release to roll back to: none was served before the"
                f" current one in {folder}"
            )
        if release.state == "failed":
            raise UsageError(f"{service} release {release.id} failed its deploy: refusing it")
        now = current(self.layout, service)
        if now is not None and now.id == release.id:
            raise UsageError(f"{service} release {release.id} is already current")
        return release
