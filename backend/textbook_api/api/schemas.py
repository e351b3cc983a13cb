"""Request and response bodies of the deployments API."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)

from textbook_api.models import MAX_BIG_INTEGER, MAX_INTEGER
from textbook_api.services.deployments import NAME_PATTERN

Name = Field(pattern=NAME_PATTERN.pattern, max_length=64)
State = Literal["queued", "in_progress", "succeeded", "failed", "cancelled", "rolled_back"]
Level = Literal["debug", "info", "warning", "error"]
StepStatus = Literal["started", "succeeded", "failed", "info"]
# Integers as the database columns hold them (see models.MAX_INTEGER): larger ones are 422.
# Integers in bodies are strict: JSON `false` or `1.0` is not an integer.
Id = Annotated[int, Field(ge=1, le=MAX_INTEGER)]
Count = Annotated[int, Field(ge=0, le=MAX_INTEGER)]
# PostgreSQL text cannot hold NUL characters: refused with 422 like any other bad value.
NO_NUL = r"^[^\x00]*$"


def _optional_text(max_length: int) -> Any:
    return Field(default=None, pattern=NO_NUL, max_length=max_length)


_RFC3339_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)


def _rfc3339_text(value: object) -> object:
    """Text must be an RFC 3339 date-time (pydantic alone takes `7` as a Unix time)."""
    if isinstance(value, str) and not _RFC3339_DATE_TIME.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, like 2026-11-23T16:35:14Z")
    return value


def _as_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise ValueError("is out of range once converted to UTC") from None


def _finite_numbers(value: Any) -> Any:
    """JSON has no NaN or Infinity (`1e400` parses as one): stored, they could not be answered."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite")
    children = list(value.values()) if isinstance(value, dict) else value
    if isinstance(children, list):
        for child in children:
            _finite_numbers(child)
    return value


# A JSON object of any shape, as `data` and `settings` take.
JsonObject = Annotated[dict[str, Any], AfterValidator(_finite_numbers)]
# An instant given with its offset (RFC 3339, as the schema's `date-time` says), as UTC.
UtcDateTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_as_utc)]


class ORMModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class JobCreate(BaseModel):
    operation: str = Name
    service: str = Name
    environment: str = Name
    target: str = Name
    git_sha: str | None = Field(default=None, pattern=r"^[0-9a-f]{7,40}$")
    git_ref: str | None = _optional_text(255)
    actor: str | None = _optional_text(255)
    trigger: str | None = _optional_text(64)


class Transition(BaseModel):
    state: State
    error: str | None = _optional_text(10_000)


class EventCreate(BaseModel):
    message: str = Field(min_length=1, max_length=10_000, pattern=NO_NUL)
    level: Level = "info"
    step: str | None = _optional_text(128)
    status: StepStatus | None = None
    duration_ms: int | None = Field(default=None, ge=0, le=MAX_INTEGER, strict=True)
    data: JsonObject = Field(default_factory=dict)


class ArtifactCreate(BaseModel):
    kind: str = Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")
    uri: str = Field(min_length=1, max_length=2048, pattern=NO_NUL)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0, le=MAX_BIG_INTEGER, strict=True)


class ConfigurationWrite(BaseModel):
    settings: JsonObject = Field(default_factory=dict)


class EventOut(ORMModel):
    sequence: Id
    created_at: AwareDatetime
    level: Level
    step: str | None
    status: str | None  # the pipeline's recorder writes here too, past this schema
    message: str
    duration_ms: Count | None
    data: dict[str, Any]


class ArtifactOut(ORMModel):
    id: Id
    kind: str
    uri: str
    sha256: str
    size_bytes: int = Field(ge=0, le=MAX_BIG_INTEGER)
    created_at: AwareDatetime


class JobOut(ORMModel):
    id: Id
    operation: str
    service: str
    environment: str
    target: str
    state: State
    git_sha: str | None
    git_ref: str | None
    actor: str | None
    trigger: str | None
    error: str | None
    created_at: AwareDatetime
    started_at: AwareDatetime | None
    finished_at: AwareDatetime | None


class JobDetail(JobOut):
    events: list[EventOut]
    artifacts: list[ArtifactOut]


class JobPage(BaseModel):
    items: list[JobOut]
    total: Count
    limit: Count
    offset: Count


class ConfigurationOut(ORMModel):
    id: Id
    service: str
    environment: str
    target: str
    settings: dict[str, Any]
    updated_at: AwareDatetime
