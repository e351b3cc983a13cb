"""SQLAlchemy models. Importing this package registers every table on `Base.metadata`."""

from textbook_api.models.base import Base
from textbook_api.models.deployment import (
    JOB_STATES,
    DeploymentArtifact,
    DeploymentConfiguration,
    DeploymentEvent,
    DeploymentJob,
)

__all__ = [
    "JOB_STATES",
    "Base",
    "DeploymentArtifact",
    "DeploymentConfiguration",
    "DeploymentEvent",
    "DeploymentJob",
]
