"""What a deploy target contributes to the operations, and the options every target shares.

A target is bound to one run: the operations hand it the settings and the parsed options, then
ask it for steps. They never name a target, so adding one is a module and a registry line.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import httpx

from pipeline.audit import audit_trail
from pipeline.core import Option, OptionValue, Run, Step
from pipeline.database import Database
from pipeline.errors import OperationFailed, UsageError
from pipeline.locks import file_lock
from textbook_api.config import Settings

LEASE_RENEW_SECONDS = 5

GATE_OPTIONS = (
    Option("health_attempts", "readiness probes before the release is refused", 60, "N"),
    Option("health_interval_ms", "pause between readiness probes", 250, "MS"),
    Option("health_timeout_ms", "time each readiness probe may take", 2000, "MS"),
)
KEEP_OPTION = Option("keep", "releases kept per service (current and rollback target always)", 5,
                     "N")


@dataclass(frozen=True)
class Gate:
    """How a release proves it is ready before it gets (or keeps) traffic."""

    path: str = "/ready"
    interval: float = 0.25
    timeout: float = 2.0
    attempts: int = 60

    @classmethod
    def from_options(cls, options: Mapping[str, OptionValue]) -> Gate:
        gate = cls(
            attempts=int(options.get("health_attempts") or 60),
            interval=int(options.get("health_interval_ms") or 250) / 1000,
            timeout=int(options.get("health_timeout_ms") or 2000) / 1000,
        )
        if gate.attempts < 1:
            raise UsageError("--health-attempts must be at least 1")
        return gate

    def describe(self) -> str:
        return (f"GET {self.path} until 2xx (at most {self.attempts} tries,"
                f" every {self.interval:g}s)")

    def wait(self, base_url: str, what: str,
             still_trying: Callable[[], bool] = lambda: True) -> str:
        """Probe base_url + path until it answers 2xx; the last answer is kept for the record."""
        url = base_url.rstrip("/") + self.path
        answer = "no answer"
        for attempt in range(self.attempts):
            try:
                response = httpx.get(url, timeout=self.timeout)
                answer = f"HTTP {response.status_code}: {response.text[:500]}"
                if response.is_success:
                    return answer
            except httpx.HTTPError as error:
                answer = f"{type(error).__name__}: {error}"
            if not still_trying() or attempt == self.attempts - 1:
                break
            time.sleep(self.interval)
        raise OperationFailed(f"{what} failed its health gate at {url}: {answer}")


class Target(ABC):
    """A place the services deploy to, bound to one run's settings and options."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line for the help of --target
    services: ClassVar[tuple[str, ...]]  # the services it can deploy
    # Options only this target reads; the deploy operations offer the union of them all.
    own_options: ClassVar[tuple[Option, ...]] = ()

    def __init__(self, settings: Settings, options: Mapping[str, OptionValue]) -> None:
        self.settings = settings
        self.options = options
        self.environment = str(options.get("environment") or settings.environment)
        self.lock_timeout = int(options.get("lock_timeout") or 0)
        self.gate = Gate.from_options(options)

    def accept(self, service: str) -> None:
        if service not in self.services:
            raise UsageError(
                f"target {self.name} does not deploy the {service}"
                f" (it deploys: {', '.join(self.services)})"
            )

    def context(self) -> dict[str, str]:
        """What the plan header shows about where the run goes."""
        return {"environment": self.environment, "target": self.name}

    @abstractmethod
    def health_url(self, service: str) -> str | None:
        """Where `monitor` checks the service once it is deployed (None: nothing to check)."""

    def preflight(self, services: tuple[str, ...]) -> None:
        """Checks that need no change to the world (free port, settings present): UsageError."""

    def require_settings(self, required: Mapping[str, object]) -> None:
        """Exit 2 naming every setting (environment variable) the target needs and lacks."""
        missing = [name for name, value in required.items() if not value]
        if missing:
            raise UsageError(f"the {self.name} target needs {', '.join(missing)} (see"
                             " docs/cicd-secrets.md)")

    @abstractmethod
    def deploy_steps(self, service: str) -> list[Step]:
        """The steps that put a new release of the service live (the caller registers it)."""

    @abstractmethod
    def rollback_steps(self, service: str, to: str | None) -> list[Step]:
        """The steps that put an earlier release back (`to`, or the one served before)."""

    def lock_path(self, service: str) -> Path:
        return self.settings.data_dir.resolve() / "deploy" / self.environment / "locks" / (
            f"{service}.lock" if self.name == "local" else f"{self.name}-{service}.lock")

    def lock_step(self, service: str) -> Step:
        """Keep two runs on this service apart; a lock left by a killed run is recovered, and
        that run's job closed as failed."""
        path = self.lock_path(service)

        def take(run: Run) -> None:
            job_id = run.recorder.job_id if run.recorder else None
            stale = run.resources.enter_context(
                file_lock(path, f"deploy {service}", self.lock_timeout,
                          renew_seconds=LEASE_RENEW_SECONDS, job_id=job_id)
            )
            if stale is None:
                return
            message = f"recovered the stale {service} lock left by {stale} (holder gone)"
            run.console.print(f"    {message}")
            if run.recorder is not None:
                run.recorder.note(message, step="lock")
                if stale.job_id is not None:
                    run.recorder.close_abandoned(
                        stale.job_id, f"its run died holding the {service} lock, recovered"
                    )

        return Step("lock", f"flock {path} (lease renewed every {LEASE_RENEW_SECONDS}s)", take)

    def history_lines(self, service: str) -> list[str]:
        """The service's release history as the target keeps it, for `status` (none: empty)."""
        return []

    def register_step(self, service: str) -> Step:
        """Save where the deployed service answers, for `monitor` and `GET /configurations`."""
        url = self.health_url(service)
        settings = {"health_url": url} if url else {}

        def save(run: Run) -> None:
            # Like the job record, a side record: the deploy is done whether or not it is saved.
            try:
                database = Database.from_settings(self.settings)
                with audit_trail(database, "register", run.console.redact) as trail:
                    trail.save_configuration(service, self.environment, self.name, settings)
            except OperationFailed as error:
                run.console.print(f"warning: the {service} configuration was not saved: {error}")
                return
            run.console.print(f"    {service} on {self.name}: health {url or 'not checked'}")

        return Step("register", f"save the {service} configuration (health_url {url})", save)
