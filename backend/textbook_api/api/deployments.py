"""/api/v1: the audit trail of every build, migration, index and deploy."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request, status
from fastapi.responses import JSONResponse

from textbook_api.api.deps import Writer, deployment_service
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
)
from textbook_api.services.deployments import (
    DeploymentService,
    DomainError,
    IllegalTransition,
    InvalidConfiguration,
    JobFilter,
    NotFound,
    PayloadTooLarge,
)

router = APIRouter(prefix="/api/v1", tags=["deployments"])
Service = Annotated[DeploymentService, Depends(deployment_service)]
MAX_PAGE = 100


@router.get("/jobs", response_model=JobPage)
def list_jobs(
    deployments: Service,
    service: str | None = None,
    environment: str | None = None,
    state: State | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JobPage:
    """Jobs, newest first, filtered by service, environment, state and creation time."""
    jobs, total = deployments.jobs(
        JobFilter(service, environment, state, since), limit=limit, offset=offset
    )
    items = [JobOut.model_validate(job) for job in jobs]
    return JobPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/jobs/{job_id}", response_model=JobDetail)
def get_job(job_id: int, deployments: Service) -> JobDetail:
    """One job with its events (in sequence) and artifacts."""
    return JobDetail.model_validate(deployments.job(job_id))


@router.post("/jobs", response_model=JobOut, status_code=201, dependencies=[Writer])
def create_job(body: JobCreate, deployments: Service) -> JobOut:
    """Open a job (state queued) for a remote reporter such as a CI job."""
    return JobOut.model_validate(deployments.create_job(**body.model_dump()))


@router.post("/jobs/{job_id}/transitions", response_model=JobOut, dependencies=[Writer])
def transition_job(job_id: int, body: Transition, deployments: Service) -> JobOut:
    """Move a job along queued → in_progress → succeeded | failed | cancelled → rolled_back."""
    job = deployments.job(job_id)
    deployments.transition(job, body.state, body.error)
    return JobOut.model_validate(job)


@router.post(
    "/jobs/{job_id}/events", response_model=EventOut, status_code=201, dependencies=[Writer]
)
def append_event(job_id: int, body: EventCreate, deployments: Service) -> EventOut:
    """Append an event; `data` is bounded (16 KiB as JSON), larger bodies get 413."""
    job = deployments.job(job_id)
    event = deployments.append_event(job, body.message, **body.model_dump(exclude={"message"}))
    return EventOut.model_validate(event)


@router.post(
    "/jobs/{job_id}/artifacts", response_model=ArtifactOut, status_code=201, dependencies=[Writer]
)
def attach_artifact(job_id: int, body: ArtifactCreate, deployments: Service) -> ArtifactOut:
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
)
def save_configuration(
    service: str, environment: str, target: str, body: ConfigurationWrite, deployments: Service
) -> ConfigurationOut:
    """Create or replace one configuration (validated: names, known target, bounded size)."""
    saved = deployments.save_configuration(service, environment, target, body.settings)
    return ConfigurationOut.model_validate(saved)


_STATUS_OF: dict[type[DomainError], int] = {
    NotFound: status.HTTP_404_NOT_FOUND,
    IllegalTransition: status.HTTP_409_CONFLICT,
    InvalidConfiguration: status.HTTP_422_UNPROCESSABLE_CONTENT,
    PayloadTooLarge: status.HTTP_413_CONTENT_TOO_LARGE,
}


def _domain_error(_request: Request, error: Exception) -> JSONResponse:
    code = next(
        (code for kind, code in _STATUS_OF.items() if isinstance(error, kind)),
        status.HTTP_400_BAD_REQUEST,
    )
    detail: object = str(error)
    if isinstance(error, IllegalTransition):
        detail = {"message": str(error), "current": error.current, "allowed": error.allowed}
    return JSONResponse({"detail": detail}, status_code=code)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
