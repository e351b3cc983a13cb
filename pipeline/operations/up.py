"""up: the whole stack on the embedded defaults: index, build, migrate, deploy, one URL."""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.core import Operation, OptionValue, Plan, Run, Step, composed
from pipeline.operations import populate_embeddings
from pipeline.targets import TARGET_OPTIONS, resolve
from pipeline.targets.base import GATE_OPTIONS, KEEP_OPTION
from textbook_api.config import Settings

NAME = "up"
SERVICES = ("frontend", "backend")
OPTIONS = (*TARGET_OPTIONS, *GATE_OPTIONS, KEEP_OPTION)


def plan(settings: Settings, options: Mapping[str, OptionValue]) -> Plan:
    target = resolve(settings, options, SERVICES)
    url = target.health_url("frontend")

    def announce(run: Run) -> None:
        run.console.print(f"    the textbook and its API: {url}")

    steps = [
        *composed(populate_embeddings.OPERATION, settings),
        *(step for service in SERVICES for step in target.deploy_steps(service)),
        # After every deploy step: the backend's migrations make the table they write to.
        *(target.register_step(service) for service in SERVICES),
        Step("url", f"print {url}", announce),
    ]
    return Plan(NAME, target.context(), tuple(steps), service="stack", target=target.name,
                environment=target.environment)


OPERATION = Operation(
    name=NAME,
    help="Bring up the whole stack: index the book, build and deploy the site and the API.",
    options=OPTIONS,
    plan=plan,
)
