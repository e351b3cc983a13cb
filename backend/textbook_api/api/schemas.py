"""Request and response bodies of the deployments API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from textbook_api.services.deployments import NAME_PATTERN

Name = Field(pattern=NAME_PATTERN.pattern, max_length=64)
State = Literal["queued", "in_progress", "succeeded", "failed", "cancelled", "rolled_back"]
Level = Literal["debug", "info", "warning", "error"]


class ORMModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class JobCreate(BaseModel):
    operation: str = Name
    service: str = Name
    environment: str = Name
    target: str = Name
    git_sha: str | None = Field(default=None, pattern=r"^[0-9a-f]{7,40}$")
    git_ref: str | None = Field(default=None, max_length=255)
    actor: str | None = Field(default=None, max_length=255)
    trigger: str | None = Field(default=None, max_length=64)


class Transition(BaseModel):
    state: State
    error: str | None = Field(default=None, max_length=10_000)


class EventCreate(BaseModel):
    message: str = Field(min_length=1, max_length=10_000)
    level: Level = "info"
    step: str | None = Field(default=None, max_length=128)
    status: Literal["started", "succeeded", "failed", "info"] | None = None
    duration_ms: int | None = Field(default=None, ge=0)
    data: dict[str, Any] = Field(default_factory=dict)


class ArtifactCreate(BaseModel):
    kind: str = Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")
    uri: str = Field(min_length=1, max_length=2048)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)


class ConfigurationWrite(BaseModel):
    settings: dict[str, Any] = Field(default_factory=dict)


class EventOut(ORMModel):
    sequence: int
    created_at: datetime
    level: str
    step: str | None
    status: str | None
    message: str
    duration_ms: int | None
    data: dict[str, Any]


class ArtifactOut(ORMModel):
    id: int
    kind: str
    uri: str
    sha256: str
    size_bytes: int
    created_at: datetime


class JobOut(ORMModel):
    id: int
    operation: str
    service: str
    environment: str
    target: str
    state: str
    git_sha: str | None
    git_ref: str | None
    actor: str | None
    trigger: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobDetail(JobOut):
    events: list[EventOut]
    artifacts: list[ArtifactOut]


class JobPage(BaseModel):
    items: list[JobOut]
    total: int
    limit: int
    offset: int


class ConfigurationOut(ORMModel):
    id: int
    service: str
    environment: str
    target: str
    settings: dict[str, Any]
    updated_at: datetime
