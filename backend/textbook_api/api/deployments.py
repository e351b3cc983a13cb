"""/api/v1: the audit trail of every build, migration, index and deploy."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from textbook_api.api.deps import Writer, deployment_service
from textbook_api.api.errors import answers
from textbook_api.api.schemas import (
    ArtifactCreate,
    ArtifactOut,
    ConfigurationOut,
    ConfigurationWrite,
    EventCreate,
    EventOut,
    JobCreate,
    JobDetail,
    JobOut,
    JobPage,
    State,
    Transition,
    UtcDateTime,
)
from textbook_api.models import MAX_INTEGER
from textbook_api.services.deployments import (
    NAME_PATTERN,
    TARGETS,
    DeploymentService,
    JobFilter,
)

router = APIRouter(prefix="/api/v1", tags=["deployments"])
Service = Annotated[DeploymentService, Depends(deployment_service)]
MAX_PAGE = 100
JobId = Annotated[int, Path(ge=1, le=MAX_INTEGER)]
NameFilter = Annotated[str | None, Query(pattern=NAME_PATTERN.pattern, max_length=64)]
NameSegment = Annotated[str, Path(pattern=NAME_PATTERN.pattern, max_length=64)]
# Checked by the configuration validator (422 naming the known ones); listed here for clients.
TargetSegment = Annotated[str, Path(json_schema_extra={"enum": list(TARGETS)})]
# Statuses a write can answer besides its success and 422: an unreadable body, no token, a bad one.
WRITE = (400, 401, 403)


@router.get("/jobs", response_model=JobPage, responses=answers(422))
def list_jobs(
    deployments: Service,
    service: NameFilter = None,
    environment: NameFilter = None,
    state: State | None = None,
    since: Annotated[UtcDateTime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_INTEGER)] = 0,
) -> JobPage:
    """Jobs, newest first, filtered by service, environment, state and creation time."""
    jobs, total = deployments.jobs(
        JobFilter(service, environment, state, since), limit=limit, offset=offset
    )
    items = [JobOut.model_validate(job) for job in jobs]
    return JobPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/jobs/{job_id}", response_model=JobDetail, responses=answers(404, 422))
def get_job(job_id: JobId, deployments: Service) -> JobDetail:
    """One job with its events (in sequence) and artifacts."""
    return JobDetail.model_validate(deployments.job(job_id))


@router.post(
    "/jobs", response_model=JobOut, status_code=201, dependencies=[Writer],
    responses=answers(*WRITE, 422),
)
def create_job(body: JobCreate, deployments: Service) -> JobOut:
    """Open a job (state queued) for a remote reporter such as a CI job."""
    return JobOut.model_validate(deployments.create_job(**body.model_dump()))


@router.post(
    "/jobs/{job_id}/transitions", response_model=JobOut, dependencies=[Writer],
    responses=answers(*WRITE, 404, 409, 422),
)
def transition_job(job_id: JobId, body: Transition, deployments: Service) -> JobOut:
    """Move a job along queued → in_progress → succeeded | failed | cancelled → rolled_back."""
    job = deployments.job(job_id)
    deployments.transition(job, body.state, body.error)
    return JobOut.model_validate(job)


@router.post(
    "/jobs/{job_id}/events", response_model=EventOut, status_code=201, dependencies=[Writer],
    responses=answers(*WRITE, 404, 413, 422),
)
def append_event(job_id: JobId, body: EventCreate, deployments: Service) -> EventOut:
    """Append an event; `data` is bounded (16 KiB as JSON), larger bodies get 413."""
    job = deployments.job(job_id)
    event = deployments.append_event(job, body.message, **body.model_dump(exclude={"message"}))
    return EventOut.model_validate(event)


@router.post(
    "/jobs/{job_id}/artifacts", response_model=ArtifactOut, status_code=201, dependencies=[Writer],
    responses=answers(*WRITE, 404, 422),
)
def attach_artifact(job_id: JobId, body: ArtifactCreate, deployments: Service) -> ArtifactOut:
    """Record an artifact (kind, uri, sha256, size) of a job."""
    job = deployments.job(job_id)
    return ArtifactOut.model_validate(deployments.attach_artifact(job, **body.model_dump()))


@router.get("/configurations", response_model=list[ConfigurationOut])
def list_configurations(deployments: Service) -> list[ConfigurationOut]:
    """Deployment configurations per (service, environment, target)."""
    return [ConfigurationOut.model_validate(c) for c in deployments.configurations()]


@router.put(
    "/configurations/{service}/{environment}/{target}",
    response_model=ConfigurationOut,
    dependencies=[Writer],
    responses=answers(*WRITE, 413, 422),
)
def save_configuration(
    service: NameSegment,
    environment: NameSegment,
    target: TargetSegment,
    body: ConfigurationWrite,
    deployments: Service,
) -> ConfigurationOut:
    """Create or replace one configuration (validated: names, known target, bounded size)."""
    saved = deployments.save_configuration(service, environment, target, body.settings)
    return ConfigurationOut.model_validate(saved)
