"""Deploy targets, registered here: the one list that `--target`, its help, the "unknown target"
error and the deploy operations read. A new target is a module and one line below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pipeline.core import Option, OptionValue, Plan
from pipeline.errors import UsageError
from pipeline.targets.base import Target
from pipeline.targets.kubernetes import KubernetesTarget
from pipeline.targets.local import LocalTarget
from pipeline.targets.railway import RailwayTarget
from pipeline.targets.vercel import VercelTarget
from textbook_api.config import Settings

REGISTRY: dict[str, type[Target]] = {
    target.name: target
    for target in (
        LocalTarget,
        RailwayTarget,
        KubernetesTarget,
        VercelTarget,
    )
}
DEFAULT_TARGET = LocalTarget.name


def _known() -> str:
    return ", ".join(sorted(REGISTRY))


def _target_options() -> tuple[Option, ...]:
    """--target and --environment, then every target's own options (each named once)."""
    known = "; ".join(f"{name}: {REGISTRY[name].summary}" for name in sorted(REGISTRY))
    shared = (
        Option("target", f"where to deploy ({known})", DEFAULT_TARGET, "TARGET"),
        Option("environment", "environment to deploy (default: ENVIRONMENT)", None, "NAME"),
    )
    own: dict[str, Option] = {}
    for target in REGISTRY.values():
        own.update({option.name: option for option in target.own_options})
    lock = Option("lock_timeout", "seconds to wait for another deploy's lock", 10, "SECONDS")
    return (*shared, *own.values(), lock)


TARGET_OPTIONS = _target_options()


def resolve(settings: Settings, options: Mapping[str, OptionValue],
            services: tuple[str, ...]) -> Target:
    """The target named by --target, bound to this run, checked to deploy `services`."""
    name = str(options.get("target") or DEFAULT_TARGET)
    kind = REGISTRY.get(name)
    if kind is None:
        raise UsageError(f"unknown target {name!r} (known: {_known()})")
    target = kind(settings, options)
    for service in services:
        target.accept(service)
    target.preflight(services)
    return target


def service_deploy(operation: str,
                   service: str) -> Callable[[Settings, Mapping[str, OptionValue]], Plan]:
    """The plan of a deploy operation of one service: the chosen target's deploy steps, then
    the registration of its configuration (deploy-backend and deploy-frontend differ only in
    the service and their options)."""
    def plan(settings: Settings, options: Mapping[str, OptionValue]) -> Plan:
        target = resolve(settings, options, (service,))
        steps = (*target.deploy_steps(service), target.register_step(service))
        return Plan(operation, target.context(), steps,
                    service=service, target=target.name, environment=target.environment)
    return plan
