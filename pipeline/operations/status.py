"""status: recent jobs per service and environment, or one job's events."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pipeline.audit import audit_trail, table
from pipeline.core import Operation, Option, OptionValue, Plan, Run, Step
from pipeline.database import Database
from pipeline.errors import UsageError
from pipeline.targets import resolve
from pipeline.targets.base import Target
from textbook_api.config import Settings
from textbook_api.models import DeploymentJob
from textbook_api.services.deployments import JobFilter

NAME = "status"

OPTIONS = (
    Option("job", "show this job's events and artifacts instead", None, "JOB_ID"),
    Option("service", "only jobs of this service", None, "NAME"),
    Option("environment", "only jobs of this environment", None, "NAME"),
    Option("limit", "how many recent jobs", 20, "N"),
    Option("target", "also show this deploy target's own release history (kubernetes: helm"
           " history of the environment's release)", None, "TARGET"),
)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _duration(job: DeploymentJob) -> str:
    if job.started_at is None or job.finished_at is None:
        return "-"
    return f"{(job.finished_at - job.started_at).total_seconds():.1f}s"


def _jobs_step(database: Database, where: JobFilter, limit: int) -> Step:
    def show(run: Run) -> None:
        with audit_trail(database, NAME, run.console.redact) as deployments:
            jobs, total = deployments.jobs(where, limit=limit, offset=0)
            rows = [
                [str(j.id), j.operation, j.service, j.environment, j.target, j.state,
                 _when(j.created_at), _duration(j), j.actor or "-"]
                for j in jobs
            ]
        headers = ["JOB", "OPERATION", "SERVICE", "ENV", "TARGET", "STATE", "CREATED",
                   "TOOK", "ACTOR"]
        for line in table(headers, rows):
            run.console.print(line)
        run.console.print(f"{len(rows)} of {total} job(s)")

    return Step("jobs", "list recent jobs", show)


def _job_step(database: Database, job_id: int) -> Step:
    def show(run: Run) -> None:
        with audit_trail(database, NAME, run.console.redact) as deployments:
            job = deployments.job(job_id)
            run.console.print(
                f"job {job.id}: {job.operation} {job.service}/{job.environment} -> {job.target},"
                f" {job.state}, by {job.actor or '-'} at {job.git_sha or '-'}"
            )
            if job.error:
                run.console.print(f"error: {job.error}")
            rows = [
                [str(e.sequence), _when(e.created_at), e.level, e.step or "-", e.status or "-",
                 f"{e.duration_ms}ms" if e.duration_ms is not None else "-", e.message]
                for e in job.events
            ]
            for line in table(["#", "TIME", "LEVEL", "STEP", "STATUS", "TOOK", "MESSAGE"], rows):
                run.console.print(line)
            for artifact in job.artifacts:
                run.console.print(
                    f"artifact {artifact.kind}: {artifact.uri}"
                    f" ({artifact.size_bytes} bytes, sha256 {artifact.sha256})"
                )

    return Step("job", f"show job {job_id}", show)


def _history_step(target: Target, service: str) -> Step:
    def show(run: Run) -> None:
        lines = target.history_lines(service)
        run.console.print(f"{service} releases on {target.name} ({target.environment}):")
        for line in lines or ["none kept by this target"]:
            run.console.print(f"  {line}")

    return Step("history", f"show the {service} release history on {target.name}", show)


def plan(settings: Settings, options: Mapping[str, OptionValue]) -> Plan:
    database = Database.from_settings(settings)
    limit = int(options["limit"] or 0)
    if not 1 <= limit <= 100:
        raise UsageError("--limit must be between 1 and 100")
    context = {"environment": settings.environment, "database": database.display()}
    job = options["job"]
    if job is not None:
        if not str(job).isdigit():
            raise UsageError(f"--job takes a job number, not {job!r}")
        return Plan(NAME, context, (_job_step(database, int(str(job))),), report=True)
    where = JobFilter(
        service=str(options["service"]) if options["service"] else None,
        environment=str(options["environment"]) if options["environment"] else None,
    )
    steps = [_jobs_step(database, where, limit)]
    if options["target"]:
        service = where.service or "backend"
        steps.append(_history_step(resolve(settings, options, (service,)), service))
    return Plan(NAME, context, tuple(steps), report=True)


OPERATION = Operation(
    name=NAME,
    help="Show recent jobs as a table, or one job's events and artifacts (--job JOB_ID).",
    options=OPTIONS,
    plan=plan,
)
