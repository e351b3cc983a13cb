"""deploy-backend: wheel → release environment → migrations → health gate → switch → retention.

The local target serves every release from one listening socket held by a keeper process, so
the old release drains while the new one already accepts: no request fails during the switch.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.core import Operation, OptionValue, Plan, Run, Step
from pipeline.local.deploy import (
    GATE_OPTIONS,
    KEEP_OPTION,
    TARGET_OPTIONS,
    Target,
    backend_switch_steps,
    build_and_install_steps,
    composed,
    keep_releases,
    lock_step,
    prune_step,
    uv,
)
from pipeline.local.releases import Release
from pipeline.operations import run_migrations
from textbook_api.config import Settings

NAME = "deploy-backend"
OPTIONS = (*TARGET_OPTIONS, *GATE_OPTIONS, KEEP_OPTION)


def steps(target: Target, keep: int) -> list[Step]:
    def new_release(run: Run) -> Release:
        release: Release = run.state["release"]
        return release

    return [
        lock_step(target, "backend"),
        *build_and_install_steps(target),
        *composed(run_migrations.OPERATION, target.settings),
        *backend_switch_steps(target, new_release),
        prune_step(target, "backend", keep),
    ]


def plan(settings: Settings, options: Mapping[str, OptionValue]) -> Plan:
    target = Target(settings, options)
    target.check_port()
    uv()
    return Plan(NAME, target.context(), tuple(steps(target, keep_releases(options))),
                service="backend", target="local", environment=target.environment)


OPERATION = Operation(
    name=NAME,
    help="Build, migrate and deploy the API behind a health gate, with no failed request.",
    options=OPTIONS,
    plan=plan,
)
