"""rollback: switch a service back to an earlier release, through the same health gate.

Schema migrations are not reversed: a rollback assumes the earlier release runs against the
current schema (migrations are written expand-then-contract for that reason).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pipeline.core import Operation, Option, OptionValue, Plan, Run, Step
from pipeline.errors import UsageError
from pipeline.local.deploy import (
    GATE_OPTIONS,
    TARGET_OPTIONS,
    Target,
    backend_switch_steps,
    lock_step,
    site_switch_step,
)
from pipeline.local.releases import Release, current, find, previous_served
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


def _chosen(target: Target, service: str, wanted: OptionValue) -> Release:
    release = (find(target.layout, service, str(wanted)) if wanted
               else previous_served(target.layout, service))
    if release is None:
        what = f"release {wanted!r}" if wanted else "an earlier served release"
        folder = target.layout.releases(service)
        raise UsageError(f"no {service} {what} to roll back to in {folder}")
    if release.state == "failed":
        raise UsageError(f"{service} release {release.id} failed its deploy: refusing it")
    now = current(target.layout, service)
    if now is not None and now.id == release.id:
        raise UsageError(f"{service} release {release.id} is already current")
    return release


def _constant(release: Release) -> Callable[[Run], Release]:
    return lambda _run: release


def _record_step(target: Target, service: str) -> Step:
    def record(run: Run) -> None:
        replaced = run.state.get(f"replaced:{service}")
        if replaced is not None and run.recorder is not None and replaced.meta.get("job_id"):
            run.recorder.mark_rolled_back(int(replaced.meta["job_id"]))

    return Step("mark", f"mark the job that deployed the replaced {service} release rolled back",
                record)


def _remember_current(target: Target, service: str) -> Step:
    def remember(run: Run) -> None:
        run.state[f"replaced:{service}"] = current(target.layout, service)

    return Step("current", f"note the current {service} release", remember)


def plan(settings: Settings, options: Mapping[str, OptionValue]) -> Plan:
    target = Target(settings, options)
    service = str(options["service"])
    if service not in (*SERVICES, "all"):
        raise UsageError(f"--service must be backend, frontend or all, not {service!r}")
    services = SERVICES if service == "all" else (service,)
    if "backend" in services:
        target.check_port()
    if options["to"] and len(services) > 1:
        raise UsageError("--to names one service's release: use it with --service")
    steps: list[Step] = []
    for name in services:
        release = _chosen(target, name, options["to"])
        steps += [lock_step(target, name), _remember_current(target, name)]
        chosen = _constant(release)
        if name == "backend":
            steps += backend_switch_steps(target, chosen)
        else:
            steps.append(site_switch_step(target, chosen, release.id))
        steps.append(_record_step(target, name))
    context = {**target.context(), "service": service}
    return Plan(NAME, context, tuple(steps), service=service if service != "all" else "stack",
                target="local", environment=target.environment)


OPERATION = Operation(
    name=NAME,
    help="Return a service (or both) to an earlier release, health-gated like a deploy.",
    options=OPTIONS,
    plan=plan,
)
