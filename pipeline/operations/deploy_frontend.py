"""deploy-frontend: build the site, copy it into a release, switch `current` atomically.

The local backend serves the current frontend release at `/` (SITE_DIR), so the switch is a
symlink swap that the next request already sees.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.core import Operation, Option, OptionValue, Plan, Step
from pipeline.local.deploy import (
    KEEP_OPTION,
    TARGET_OPTIONS,
    Target,
    composed,
    keep_releases,
    lock_step,
    prune_step,
    site_steps,
)
from pipeline.operations import build_frontend
from textbook_api.config import Settings

NAME = "deploy-frontend"
OPTIONS = (
    *TARGET_OPTIONS,
    KEEP_OPTION,
    Option("prebuilt", "deploy the site already built in FRONTEND_DIR/build (no build step)",
           False),
)
# The local stack serves the site and the API on one origin: build with that profile.
LOCAL_PROFILE = "local"


def steps(target: Target, keep: int, *, prebuilt: bool = False) -> list[Step]:
    build = [] if prebuilt else composed(
        build_frontend.OPERATION, target.settings, environment=LOCAL_PROFILE
    )
    return [
        lock_step(target, "frontend"),
        *build,
        *site_steps(target, target.settings.frontend_dir / "build"),
        prune_step(target, "frontend", keep),
    ]


def plan(settings: Settings, options: Mapping[str, OptionValue]) -> Plan:
    target = Target(settings, options)
    selected = steps(target, keep_releases(options), prebuilt=bool(options["prebuilt"]))
    return Plan(NAME, target.context(), tuple(selected),
                service="frontend", target="local", environment=target.environment)


OPERATION = Operation(
    name=NAME,
    help="Build the textbook site and switch the local stack to it atomically.",
    options=OPTIONS,
    plan=plan,
)
