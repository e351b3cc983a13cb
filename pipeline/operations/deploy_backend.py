"""deploy-backend: put a new release of the API live on the chosen target, health-gated.

What a release is and how it is switched in is the target's (pipeline/targets/); on the local
target the old release drains while the new one already accepts, so no request fails.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.core import Operation, OptionValue, Plan
from pipeline.targets import TARGET_OPTIONS, resolve
from pipeline.targets.base import GATE_OPTIONS, KEEP_OPTION
from textbook_api.config import Settings

NAME = "deploy-backend"
SERVICE = "backend"
OPTIONS = (*TARGET_OPTIONS, *GATE_OPTIONS, KEEP_OPTION)


def plan(settings: Settings, options: Mapping[str, OptionValue]) -> Plan:
    target = resolve(settings, options, (SERVICE,))
    steps = (*target.deploy_steps(SERVICE), target.register_step(SERVICE))
    return Plan(NAME, target.context(), steps,
                service=SERVICE, target=target.name, environment=target.environment)


OPERATION = Operation(
    name=NAME,
    help="Build, migrate and deploy the API behind a health gate, with no failed request.",
    options=OPTIONS,
    plan=plan,
)
