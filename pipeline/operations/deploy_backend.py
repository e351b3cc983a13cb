"""deploy-backend: put a new release of the API live on the chosen target, health-gated.

What a release is and how it is switched in is the target's (pipeline/targets/); on the local
target the old release drains while the new one already accepts, so no request fails.
"""

from __future__ import annotations

from pipeline.core import Operation
from pipeline.targets import TARGET_OPTIONS, service_deploy
from pipeline.targets.base import GATE_OPTIONS, KEEP_OPTION

NAME = "deploy-backend"
SERVICE = "backend"
OPTIONS = (*TARGET_OPTIONS, *GATE_OPTIONS, KEEP_OPTION)


OPERATION = Operation(
    name=NAME,
    help="Build, migrate and deploy the API behind a health gate, with no failed request.",
    options=OPTIONS,
    plan=service_deploy(NAME, SERVICE),
)
