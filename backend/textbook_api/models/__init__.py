"""SQLAlchemy models. Importing this package registers every table on `Base.metadata`."""

from textbook_api.models.base import Base
from textbook_api.models.deployment import (
    JOB_STATES,
    MAX_BIG_INTEGER,
    MAX_INTEGER,
    DeploymentArtifact,
    DeploymentConfiguration,
    DeploymentEvent,
    DeploymentJob,
)

__all__ = [
    "JOB_STATES",
    "MAX_BIG_INTEGER",
    "MAX_INTEGER",
    "Base",
    "DeploymentArtifact",
    "DeploymentConfiguration",
    "DeploymentEvent",
    "DeploymentJob",
]
