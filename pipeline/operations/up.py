"""up: the whole local stack on the embedded defaults: index, build, migrate, deploy, one URL."""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.core import Operation, OptionValue, Plan, Run, Step
from pipeline.local.deploy import (
    GATE_OPTIONS,
    KEEP_OPTION,
    TARGET_OPTIONS,
    Target,
    composed,
    keep_releases,
)
from pipeline.operations import deploy_backend, deploy_frontend, populate_embeddings
from textbook_api.config import Settings

NAME = "up"
OPTIONS = (*TARGET_OPTIONS, *GATE_OPTIONS, KEEP_OPTION)


def plan(settings: Settings, options: Mapping[str, OptionValue]) -> Plan:
    target = Target(settings, options)
    target.check_port()
    keep = keep_releases(options)

    def announce(run: Run) -> None:
        run.console.print(f"    the textbook and its API: {target.url}")

    steps = [
        *composed(populate_embeddings.OPERATION, settings),
        *deploy_frontend.steps(target, keep),
        *deploy_backend.steps(target, keep),
        Step("url", f"print {target.url}", announce),
    ]
    return Plan(NAME, target.context(), tuple(steps), service="stack", target="local",
                environment=target.environment)


OPERATION = Operation(
    name=NAME,
    help="Bring up the local stack: index the book, build and deploy the site and the API.",
    options=OPTIONS,
    plan=plan,
)
