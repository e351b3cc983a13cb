"""Read access to the audit trail for the report operations (status, monitor)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from pipeline.database import Database
from pipeline.errors import OperationFailed
from textbook_api.models import DeploymentJob
from textbook_api.redaction import Redactor
from textbook_api.services.deployments import DeploymentService, DomainError


@contextmanager
def audit_trail(database: Database, operation: str) -> Iterator[DeploymentService]:
    engine = database.engine(operation)
    try:
        with Session(engine, expire_on_commit=False) as session:
            if not inspect(session.connection()).has_table(DeploymentJob.__tablename__):
                raise OperationFailed(
                    f"{database.display()} has no audit trail yet: run run-migrations first"
                )
            yield DeploymentService(session, Redactor.from_environment())
            session.commit()
    except OperationalError as error:
        raise database.unreachable(error) from None
    except DomainError as error:
        raise OperationFailed(str(error)) from None
    finally:
        engine.dispose()


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in [headers, *rows]]
    return [lines[0], "  ".join("-" * width for width in widths), *lines[1:]]
