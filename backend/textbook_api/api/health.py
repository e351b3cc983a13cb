"""Liveness and readiness probes (the deploy engine gates traffic on /ready)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from textbook_api.api.errors import answers
from textbook_api.config import Settings, get_settings
from textbook_api.db import get_engine
from textbook_api.migrate import alembic_config, current_revisions, head_revisions

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    revision: str


@router.get("/health", response_model=Health)
def health() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@router.get("/ready", response_model=Ready, responses=answers(503))
def ready(settings: Annotated[Settings, Depends(get_settings)]) -> Ready:
    """Readiness: the database answers and its schema is at the migrations' head."""
    try:
        with get_engine().connect() as connection:
            current = current_revisions(connection)
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"database unreachable: {reason}"
        ) from None
    heads = head_revisions(alembic_config(settings.sqlalchemy_url, settings.migrations_dir))
    if current != heads:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"database schema at {', '.join(sorted(current)) or 'base'},"
            f" migrations head is {', '.join(sorted(heads))}: run run-migrations",
        )
    return Ready(status="ready", revision=", ".join(sorted(heads)))
