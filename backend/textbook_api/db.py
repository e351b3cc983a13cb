"""Engine and session factory built from settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from textbook_api.config import get_settings


def normalize_url(raw: str) -> URL:
    """Parse a database URL, choosing the psycopg 3 driver for plain `postgresql://`."""
    url = make_url(raw)
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def _enable_sqlite_foreign_keys(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def build_engine(raw_url: str, application_name: str | None = None) -> Engine:
    """An engine for `raw_url`; `application_name` names the holder in pg_stat_activity."""
    url = normalize_url(raw_url)
    connect_args: dict[str, str] = {}
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    elif url.get_backend_name() == "postgresql" and application_name:
        connect_args["application_name"] = application_name[:63]
    engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
    return engine


_engines: dict[str, Engine] = {}


def get_engine() -> Engine:
    raw = get_settings().sqlalchemy_url
    if raw not in _engines:
        _engines[raw] = build_engine(raw)
    return _engines[raw]


def get_session() -> Iterator[Session]:
    """FastAPI dependency: one session per request."""
    with sessionmaker(get_engine(), expire_on_commit=False)() as session:
        yield session
