"""deploy-frontend: build the site and put it live on the chosen target.

On the local target the API serves the current site release at `/` (SITE_DIR), so the switch is
a symlink swap that the next request already sees.
"""

from __future__ import annotations

from pipeline.core import Operation, Option
from pipeline.targets import TARGET_OPTIONS, service_deploy
from pipeline.targets.base import KEEP_OPTION

NAME = "deploy-frontend"
SERVICE = "frontend"
OPTIONS = (
    *TARGET_OPTIONS,
    KEEP_OPTION,
    Option("prebuilt", "deploy the site already built in FRONTEND_BUILD_DIR (no build step)",
           False),
)


OPERATION = Operation(
    name=NAME,
    help="Build the textbook site and deploy it, switching to it atomically.",
    options=OPTIONS,
    plan=service_deploy(NAME, SERVICE),
)
