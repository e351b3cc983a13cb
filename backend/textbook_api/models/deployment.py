"""The audit trail of the delivery pipeline: configurations, jobs, their events and artifacts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from textbook_api.models.base import Base, UTCDateTime, utcnow

# The largest values the integer columns hold on every dialect (PostgreSQL's INTEGER is 32-bit,
# BIGINT 64-bit; SQLite's are 64-bit): the API refuses anything larger with 422.
MAX_INTEGER = 2**31 - 1
MAX_BIG_INTEGER = 2**63 - 1

JOB_STATES = ("queued", "in_progress", "succeeded", "failed", "cancelled", "rolled_back")
EVENT_LEVELS = ("debug", "info", "warning", "error")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class DeploymentConfiguration(Base):
    __tablename__ = "deployment_configuration"
    __table_args__ = (UniqueConstraint("service", "environment", "target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service: Mapped[str] = mapped_column(String(64))
    environment: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(64))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )


class DeploymentJob(Base):
    __tablename__ = "deployment_job"
    __table_args__ = (CheckConstraint(_one_of("state", JOB_STATES), name="state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operation: Mapped[str] = mapped_column(String(64), index=True)
    service: Mapped[str] = mapped_column(String(64), index=True)
    environment: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    git_sha: Mapped[str | None] = mapped_column(String(40))
    git_ref: Mapped[str | None] = mapped_column(String(255))
    actor: Mapped[str | None] = mapped_column(String(255))
    trigger: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    configuration_id: Mapped[int | None] = mapped_column(
        ForeignKey("deployment_configuration.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, index=True
    )
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    events: Mapped[list[DeploymentEvent]] = relationship(
        back_populates="job", order_by="DeploymentEvent.sequence", cascade="all, delete-orphan"
    )
    artifacts: Mapped[list[DeploymentArtifact]] = relationship(
        back_populates="job", order_by="DeploymentArtifact.id", cascade="all, delete-orphan"
    )


class DeploymentEvent(Base):
    __tablename__ = "deployment_event"
    __table_args__ = (
        UniqueConstraint("job_id", "sequence"),
        CheckConstraint(_one_of("level", EVENT_LEVELS), name="level"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("deployment_job.id", ondelete="CASCADE"))
    sequence: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    level: Mapped[str] = mapped_column(String(16), default="info")
    step: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str | None] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    job: Mapped[DeploymentJob] = relationship(back_populates="events")


class DeploymentArtifact(Base):
    __tablename__ = "deployment_artifact"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("deployment_job.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    uri: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    job: Mapped[DeploymentJob] = relationship(back_populates="artifacts")
