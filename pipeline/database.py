"""Database access for operations: a validated URL and connections that name their holder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, OperationalError

from pipeline.errors import OperationFailed, UsageError
from pipeline.locks import holder_identity
from textbook_api.redaction import mask_url_password
from textbook_api.config import Settings
from textbook_api.db import build_engine, normalize_url


@dataclass(frozen=True)
class Database:
    url: URL

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        raw = settings.sqlalchemy_url
        try:
            url = normalize_url(raw)
        except (ArgumentError, ValueError):
            raise UsageError(f"DATABASE_URL is malformed: {mask_url_password(raw)!r}") from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise UsageError(
                f"DATABASE_URL names an unsupported database {url.get_backend_name()!r}"
                " (supported: sqlite, postgresql)"
            )
        return cls(url)

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    @property
    def sqlite_file(self) -> Path | None:
        if self.dialect == "sqlite" and self.url.database not in (None, "", ":memory:"):
            return Path(str(self.url.database))
        return None

    def display(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def raw(self) -> str:
        return self.url.render_as_string(hide_password=False)

    def engine(self, operation: str) -> Engine:
        return build_engine(self.raw(), application_name=holder_identity(operation))

    def unreachable(self, error: OperationalError) -> OperationFailed:
        where = f"{self.url.host or 'localhost'}:{self.url.port or 5432}"
        if self.sqlite_file is not None:
            where = str(self.sqlite_file)
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        return OperationFailed(f"cannot reach the database at {where}: {reason}")
