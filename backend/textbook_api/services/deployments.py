"""The audit trail's rules: job states, append-only events, artifacts and history queries.

Used by the API (remote reporters such as CI jobs) and by the pipeline's recorder alike.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from textbook_api.models import (
    DeploymentArtifact,
    DeploymentConfiguration,
    DeploymentEvent,
    DeploymentJob,
)
from textbook_api.models.base import utcnow
from textbook_api.redaction import Redactor, redact_data

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "queued": ("in_progress", "cancelled"),
    "in_progress": ("succeeded", "failed", "cancelled"),
    "succeeded": ("rolled_back",),
    "failed": (),
    "cancelled": (),
    "rolled_back": (),
}
FINAL_STATES = ("succeeded", "failed", "cancelled", "rolled_back")
TARGETS = ("local", "vercel", "railway", "kubernetes")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
MAX_EVENT_DATA_BYTES = 16 * 1024
MAX_CONFIGURATION_BYTES = 16 * 1024


class DomainError(Exception):
    """A request the audit trail's rules refuse."""


class NotFound(DomainError):
    pass


class IllegalTransition(DomainError):
    def __init__(self, job: DeploymentJob, requested: str) -> None:
        self.current = job.state
        self.requested = requested
        self.allowed = TRANSITIONS[job.state]
        allowed = ", ".join(self.allowed) or "none (final state)"
        super().__init__(
            f"job {job.id} cannot go from {job.state} to {requested}; allowed: {allowed}"
        )


class InvalidConfiguration(DomainError):
    pass


class PayloadTooLarge(DomainError):
    pass


@dataclass(frozen=True)
class JobFilter:
    service: str | None = None
    environment: str | None = None
    state: str | None = None
    since: datetime | None = None


def _json_size(value: object) -> int:
    return len(json.dumps(value, default=str).encode())


def validate_names(**names: str) -> None:
    for key, value in names.items():
        if not NAME_PATTERN.match(value):
            raise InvalidConfiguration(
                f"{key} {value!r} must be lowercase letters, digits and '-' (at most 64)"
            )


def validate_configuration(
    service: str, environment: str, target: str, settings: dict[str, Any]
) -> None:
    """The deployment configuration validator: names, a known target, a bounded JSON object."""
    validate_names(service=service, environment=environment)
    if target not in TARGETS:
        raise InvalidConfiguration(f"target {target!r} is not one of {', '.join(TARGETS)}")
    if _json_size(settings) > MAX_CONFIGURATION_BYTES:
        raise PayloadTooLarge(f"settings exceed {MAX_CONFIGURATION_BYTES} bytes")


class DeploymentService:
    def __init__(self, session: Session, redact: Redactor) -> None:
        self.session = session
        self.redact = redact

    def save_configuration(
        self, service: str, environment: str, target: str, settings: dict[str, Any]
    ) -> DeploymentConfiguration:
        validate_configuration(service, environment, target, settings)
        configuration = self.session.scalar(
            select(DeploymentConfiguration).filter_by(
                service=service, environment=environment, target=target
            )
        )
        if configuration is None:
            configuration = DeploymentConfiguration(
                service=service, environment=environment, target=target
            )
            self.session.add(configuration)
        configuration.settings = redact_data(settings, self.redact)
        self.session.flush()
        return configuration

    def configurations(self) -> list[DeploymentConfiguration]:
        query = select(DeploymentConfiguration).order_by(
            DeploymentConfiguration.service,
            DeploymentConfiguration.environment,
            DeploymentConfiguration.target,
        )
        return list(self.session.scalars(query))

    def create_job(
        self,
        *,
        operation: str,
        service: str,
        environment: str,
        target: str,
        git_sha: str | None = None,
        git_ref: str | None = None,
        actor: str | None = None,
        trigger: str | None = None,
    ) -> DeploymentJob:
        validate_names(operation=operation, service=service, environment=environment, target=target)
        configuration_id = self.session.scalar(
            select(DeploymentConfiguration.id).filter_by(
                service=service, environment=environment, target=target
            )
        )
        job = DeploymentJob(
            operation=operation,
            service=service,
            environment=environment,
            target=target,
            state="queued",
            git_sha=git_sha,
            git_ref=self.redact(git_ref) if git_ref else None,
            actor=self.redact(actor) if actor else None,
            trigger=trigger,
            configuration_id=configuration_id,
        )
        self.session.add(job)
        self.session.flush()
        return job

    def job(self, job_id: int) -> DeploymentJob:
        job = self.session.get(
            DeploymentJob,
            job_id,
            options=[selectinload(DeploymentJob.events), selectinload(DeploymentJob.artifacts)],
        )
        if job is None:
            raise NotFound(f"no deployment job {job_id}")
        return job

    def transition(
        self,
        job: DeploymentJob,
        state: str,
        error: str | None = None,
        at: datetime | None = None,
    ) -> None:
        if state not in TRANSITIONS[job.state]:
            raise IllegalTransition(job, state)
        job.state = state
        now = at or utcnow()
        if state == "in_progress":
            job.started_at = now
        if state in FINAL_STATES and job.finished_at is None:
            job.finished_at = now
        if error is not None:
            job.error = self.redact(error)
        self.session.flush()

    def append_event(
        self,
        job: DeploymentJob,
        message: str,
        *,
        level: str = "info",
        step: str | None = None,
        status: str | None = None,
        duration_ms: int | None = None,
        data: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> DeploymentEvent:
        data = data or {}
        if _json_size(data) > MAX_EVENT_DATA_BYTES:
            raise PayloadTooLarge(f"event data exceeds {MAX_EVENT_DATA_BYTES} bytes")
        for _ in range(3):
            sequence = 1 + (
                self.session.scalar(
                    select(func.max(DeploymentEvent.sequence)).filter_by(job_id=job.id)
                )
                or 0
            )
            event = DeploymentEvent(
                job_id=job.id,
                sequence=sequence,
                created_at=at or utcnow(),
                level=level,
                step=step,
                status=status,
                message=self.redact(message),
                duration_ms=duration_ms,
                data=redact_data(data, self.redact),
            )
            try:
                with self.session.begin_nested():
                    self.session.add(event)
                return event
            except IntegrityError:
                continue  # another writer took this sequence number: take the next one
        raise DomainError(f"could not append an event to job {job.id}: too much contention")

    def attach_artifact(
        self, job: DeploymentJob, *, kind: str, uri: str, sha256: str, size_bytes: int
    ) -> DeploymentArtifact:
        artifact = DeploymentArtifact(
            job_id=job.id, kind=kind, uri=self.redact(uri), sha256=sha256, size_bytes=size_bytes
        )
        self.session.add(artifact)
        self.session.flush()
        return artifact

    def _filtered(self, query: Select[Any], where: JobFilter) -> Select[Any]:
        for column, value in (
            (DeploymentJob.service, where.service),
            (DeploymentJob.environment, where.environment),
            (DeploymentJob.state, where.state),
        ):
            if value is not None:
                query = query.where(column == value)
        if where.since is not None:
            query = query.where(DeploymentJob.created_at >= where.since)
        return query

    def jobs(
        self, where: JobFilter, *, limit: int, offset: int
    ) -> tuple[list[DeploymentJob], int]:
        total = self.session.scalar(self._filtered(select(func.count(DeploymentJob.id)), where))
        query = self._filtered(select(DeploymentJob), where).order_by(DeploymentJob.id.desc())
        return list(self.session.scalars(query.limit(limit).offset(offset))), int(total or 0)

    def last_succeeded(self, service: str, environment: str) -> DeploymentJob | None:
        """The rollback target: the newest succeeded job for this service and environment."""
        query = (
            select(DeploymentJob)
            .filter_by(service=service, environment=environment, state="succeeded")
            .order_by(DeploymentJob.id.desc())
            .limit(1)
        )
        return self.session.scalar(query)
