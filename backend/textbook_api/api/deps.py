"""Request dependencies: a database session, the audit-trail service, the write guard."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from textbook_api.config import Settings, get_settings
from textbook_api.db import get_session
from textbook_api.redaction import Redactor
from textbook_api.services.deployments import DeploymentService

bearer = HTTPBearer(auto_error=False, description="DEPLOY_API_TOKEN")


def deployment_service(
    session: Annotated[Session, Depends(get_session)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> Iterator[DeploymentService]:
    service = DeploymentService(session, Redactor.from_settings(settings))
    yield service
    session.commit()


def require_writer(
    settings: Annotated[Settings, Depends(get_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Writes need the bearer token; a server without DEPLOY_API_TOKEN refuses every write."""
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if settings.deploy_api_token is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "writes are disabled: the server has no DEPLOY_API_TOKEN"
        )
    expected = settings.deploy_api_token.get_secret_value().encode()
    if not hmac.compare_digest(credentials.credentials.encode(), expected):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the bearer token is not valid")


Writer = Depends(require_writer)
