"""Every real run becomes a DeploymentJob with its events and artifacts, in the API's database.

The audit tables may not exist yet (run-migrations creates them), so what happens before they
do is kept and written as soon as they appear; a run that cannot be recorded says so once and
carries on: recording never changes an operation's outcome.
"""

from __future__ import annotations

import getpass
import logging
import os
import subprocess  # nosec B404: fixed git commands, no shell
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, inspect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from textbook_api.db import build_engine
from textbook_api.models import DeploymentJob
from textbook_api.models.base import utcnow
from textbook_api.redaction import Redactor
from textbook_api.services.deployments import DeploymentService, DomainError

logger = logging.getLogger("pipeline")

Action = Callable[[DeploymentService, DeploymentJob], object]


@dataclass(frozen=True)
class Origin:
    """Who and what started the run: the commit, the ref, the actor, the trigger."""

    git_sha: str | None
    git_ref: str | None
    actor: str
    trigger: str

    @classmethod
    def detect(cls) -> Origin:
        env = os.environ
        return cls(
            git_sha=env.get("GITHUB_SHA") or _git("rev-parse", "HEAD"),
            git_ref=env.get("GITHUB_REF_NAME") or _git("rev-parse", "--abbrev-ref", "HEAD"),
            actor=env.get("GITHUB_ACTOR") or getpass.getuser(),
            trigger=env.get("GITHUB_EVENT_NAME") or ("ci" if env.get("CI") else "manual"),
        )


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(  # nosec B603 B607: git from PATH, fixed arguments
            ["git", *args], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


class Recorder:
    def __init__(
        self,
        database_url: str,
        *,
        operation: str,
        service: str,
        environment: str,
        target: str,
        redact: Redactor,
        live: bool,
        warn: Callable[[str], None],
        origin: Origin | None = None,
    ) -> None:
        self._engine_url = database_url
        self._engine: Engine | None = None
        self._job_fields: dict[str, Any] = {
            "operation": operation,
            "service": service,
            "environment": environment,
            "target": target,
        }
        self.origin = origin or Origin.detect()  # who and what started the run
        self._redact = redact
        self._live = live
        self._warn = warn
        self._pending: list[Action] = []
        self._warned = False
        # After the run's end, what still arrives (an observer's warning) is written at once.
        self._closed = False
        self.job_id: int | None = None

    # What the runner reports.

    def started(self) -> None:
        at = utcnow()
        self._pending.append(
            lambda deployments, job: deployments.transition(job, "in_progress", at=at)
        )
        self._flush()

    def step_started(self, step: str, describe: str) -> None:
        self._event(step, "started", describe)

    def step_finished(self, step: str, seconds: float, error: str | None = None) -> None:
        status, level = ("failed", "error") if error else ("succeeded", "info")
        message = error or f"{step} succeeded"
        self._event(step, status, message, level=level, duration_ms=int(seconds * 1000))

    def note(self, message: str, *, step: str | None = None, **data: Any) -> None:
        self._event(step, "info", message, data=data)
        if self._closed:
            self.close()

    def artifact(self, kind: str, uri: str, sha256: str, size_bytes: int) -> None:
        self._pending.append(
            lambda deployments, job: deployments.attach_artifact(
                job, kind=kind, uri=uri, sha256=sha256, size_bytes=size_bytes
            )
        )
        self._flush()

    def mark_rolled_back(self, job_id: int) -> None:
        """The job that deployed the release just replaced by a rollback."""

        def roll_back(deployments: DeploymentService, _job: DeploymentJob) -> None:
            earlier = deployments.job(job_id)
            if earlier.state == "succeeded":
                deployments.transition(earlier, "rolled_back")

        self._pending.append(roll_back)
        self._flush()

    def close_abandoned(self, job_id: int, reason: str) -> None:
        """Fail the job of a run that died (killed) without closing its record."""

        def close(deployments: DeploymentService, job: DeploymentJob) -> None:
            abandoned = deployments.job(job_id)
            if abandoned.state in ("queued", "in_progress"):
                message = f"abandoned: {reason} by job {job.id}"
                deployments.append_event(abandoned, message, level="error", status="failed",
                                         at=utcnow())
                final = "failed" if abandoned.state == "in_progress" else "cancelled"
                deployments.transition(abandoned, final, message)

        self._pending.append(close)
        self._flush()

    def finished(self, state: str, error: str | None = None) -> None:
        at = utcnow()
        self._pending.append(
            lambda deployments, job: deployments.transition(job, state, error, at=at)
        )
        self._flush(final=True)
        self._closed = True
        self.close()
        level = logging.INFO if state == "succeeded" else logging.ERROR
        message = f"{self._job_fields['operation']} {state}" + (f": {error}" if error else "")
        logger.log(level, message, extra={"job_id": self.job_id, **self._job_fields})

    def close(self) -> None:
        """Let go of the database connections; a later report opens them again."""
        if self._engine is not None:
            self._engine.dispose()

    # Writing.

    def _event(
        self,
        step: str | None,
        status: str,
        message: str,
        *,
        level: str = "info",
        duration_ms: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        at = utcnow()
        self._pending.append(
            lambda deployments, job: deployments.append_event(
                job, message, level=level, step=step, status=status,
                duration_ms=duration_ms, data=data, at=at,
            )
        )
        self._flush()
        log = logger.error if level == "error" else logger.info
        log(message, extra={"job_id": self.job_id, **self._job_fields, "step": step})

    def _flush(self, *, final: bool = False) -> None:
        if not (final or self._live or self._closed):
            return
        try:
            self._engine = self._engine or build_engine(self._engine_url)
            with Session(self._engine, expire_on_commit=False) as session:
                if not inspect(session.connection()).has_table(DeploymentJob.__tablename__):
                    if final:
                        self._warn_once("the audit tables do not exist in this database")
                    return
                deployments = DeploymentService(session, self._redact)
                job = self._job(deployments)
                for action in self._pending:
                    action(deployments, job)
                session.commit()
                self._pending.clear()
        except SQLAlchemyError as error:
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            self._warn_once(reason)
        except DomainError as error:  # the stored job disagrees with this run: stop recording
            self._pending.clear()
            self._warn_once(str(error))

    def _job(self, deployments: DeploymentService) -> DeploymentJob:
        if self.job_id is not None:
            return deployments.job(self.job_id)
        job = deployments.create_job(
            **self._job_fields,
            git_sha=self.origin.git_sha,
            git_ref=self.origin.git_ref,
            actor=self.origin.actor,
            trigger=self.origin.trigger,
        )
        self.job_id = job.id
        return job

    def _warn_once(self, reason: str) -> None:
        if not self._warned:
            self._warned = True
            self._warn(f"this run is not recorded: {reason}")
