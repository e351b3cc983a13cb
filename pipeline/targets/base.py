"""What a deploy target contributes to the operations, and the options every target shares.

A target is bound to one run: the operations hand it the settings and the parsed options, then
ask it for steps. They never name a target, so adding one is a module and a registry line.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

from pipeline.audit import audit_trail
from pipeline.core import Option, OptionValue, Run, Step
from pipeline.database import Database
from pipeline.errors import OperationFailed, UsageError
from textbook_api.config import Settings

GATE_OPTIONS = (
    Option("health_attempts", "readiness probes before the release is refused", 60, "N"),
    Option("health_interval_ms", "pause between readiness probes", 250, "MS"),
    Option("health_timeout_ms", "time each readiness probe may take", 2000, "MS"),
)
KEEP_OPTION = Option("keep", "releases kept per service (current and rollback target always)", 5,
                     "N")


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

    @abstractmethod
    def deploy_steps(self, service: str) -> list[Step]:
        """The steps that put a new release of the service live (the caller registers it)."""

    @abstractmethod
    def rollback_steps(self, service: str, to: str | None) -> list[Step]:
        """The steps that put an earlier release back (`to`, or the one served before)."""

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
                with audit_trail(Database.from_settings(self.settings), "register") as trail:
                    trail.save_configuration(service, self.environment, self.name, settings)
            except OperationFailed as error:
                run.console.print(f"warning: the {service} configuration was not saved: {error}")
                return
            run.console.print(f"    {service} on {self.name}: health {url or 'not checked'}")

        return Step("register", f"save the {service} configuration (health_url {url})", save)
