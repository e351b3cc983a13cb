"""rollback: put a service back on an earlier release, through the same health gate.

Schema migrations are not reversed: a rollback assumes the earlier release runs against the
current schema (migrations are written expand-then-contract for that reason).
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.core import Operation, Option, OptionValue, Plan, Step
from pipeline.errors import UsageError
from pipeline.targets import TARGET_OPTIONS, resolve
from pipeline.targets.base import GATE_OPTIONS
from textbook_api.config import Settings

NAME = "rollback"
SERVICES = ("backend", "frontend")
OPTIONS = (
    Option("service", "backend, frontend or all (both, as one job)", "backend", "SERVICE"),
    Option("to", "the release to return to (default: the one served before the current)",
           None, "RELEASE"),
    *TARGET_OPTIONS,
    *GATE_OPTIONS,
)


def plan(settings: Settings, options: Mapping[str, OptionValue]) -> Plan:
    service = str(options["service"])
    if service not in (*SERVICES, "all"):
        raise UsageError(f"--service must be backend, frontend or all, not {service!r}")
    services = SERVICES if service == "all" else (service,)
    if options["to"] and len(services) > 1:
        raise UsageError("--to names one service's release: use it with --service")
    target = resolve(settings, options, services)
    to = str(options["to"]) if options["to"] else None
    steps: list[Step] = []
    for name in services:
        steps += target.rollback_steps(name, to)
    context = {**target.context(), "service": service}
    return Plan(NAME, context, tuple(steps), service=service if service != "all" else "stack",
                target=target.name, environment=target.environment)


OPERATION = Operation(
    name=NAME,
    help="Return a service (or both) to an earlier release, health-gated like a deploy.",
    options=OPTIONS,
    plan=plan,
)
