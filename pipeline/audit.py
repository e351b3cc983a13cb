"""Read access to the audit trail for the report operations (status, monitor)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

from rich import box
from rich.console import Console as RichConsole
from rich.table import Table
from rich.text import Text
from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from pipeline.database import Database
from pipeline.errors import OperationFailed
from textbook_api.models import DeploymentJob
from textbook_api.redaction import Redactor
from textbook_api.services.deployments import DeploymentService, DomainError

_NEVER_WRAP = 100_000


@contextmanager
def audit_trail(
    database: Database, operation: str, redact: Redactor
) -> Iterator[DeploymentService]:
    engine = database.engine(operation)
    try:
        with Session(engine, expire_on_commit=False) as session:
            if not inspect(session.connection()).has_table(DeploymentJob.__tablename__):
                raise OperationFailed(
                    f"{database.display()} has no audit trail yet: run run-migrations first"
                )
            yield DeploymentService(session, redact)
            session.commit()
    except OperationalError as error:
        raise database.unreachable(error) from None
    except DomainError as error:
        raise OperationFailed(str(error)) from None
    finally:
        engine.dispose()


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """The rows under their headers as aligned lines (rich), for a redacting console to print.

    Never wrapped: a line per row keeps the output greppable, and a secret split across lines
    would escape the redactor. Cells are plain text, never rich markup.
    """
    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style=None)
    for header in headers:
        grid.add_column(header, no_wrap=True)
    for row in rows:
        grid.add_row(*(Text(cell) for cell in row))
    rendered = io.StringIO()
    RichConsole(file=rendered, width=_NEVER_WRAP, color_system=None, highlight=False).print(grid)
    return [line.rstrip() for line in rendered.getvalue().splitlines()]
