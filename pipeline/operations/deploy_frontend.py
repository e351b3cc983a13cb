"""deploy-frontend: build the site and put it live on the chosen target.

On the local target the API serves the current site release at `/` (SITE_DIR), so the switch is
a symlink swap that the next request already sees.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.core import Operation, Option, OptionValue, Plan
from pipeline.targets import TARGET_OPTIONS, resolve
from pipeline.targets.base import KEEP_OPTION
from textbook_api.config import Settings

NAME = "deploy-frontend"
SERVICE = "frontend"
OPTIONS = (
    *TARGET_OPTIONS,
    KEEP_OPTION,
    Option("prebuilt", "deploy the site already built in FRONTEND_DIR/build (no build step)",
           False),
)


def plan(settings: Settings, options: Mapping[str, OptionValue]) -> Plan:
    target = resolve(settings, options, (SERVICE,))
    steps = (*target.deploy_steps(SERVICE), target.register_step(SERVICE))
    return Plan(NAME, target.context(), steps,
                service=SERVICE, target=target.name, environment=target.environment)


OPERATION = Operation(
    name=NAME,
    help="Build the textbook site and deploy it, switching to it atomically.",
    options=OPTIONS,
    plan=plan,
)
