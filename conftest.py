"""Test databases: every test gets a database of its own, made and dropped around it.

TEST_DATABASE (sqlite | postgres) picks the dialect, as the nox `tests` matrix sets it. Under
CI=true a missing PostgreSQL server fails the tests that need it; elsewhere they skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

TEST_DATABASE = os.environ.get("TEST_DATABASE", "sqlite")
POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def pytest_configure(config: pytest.Config) -> None:
    if TEST_DATABASE not in ("sqlite", "postgres"):
        raise pytest.UsageError(f"TEST_DATABASE must be sqlite or postgres, not {TEST_DATABASE!r}")


@contextmanager
def _postgres_database() -> Iterator[str]:
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"textbook_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as error:
        admin.dispose()
        message = f"PostgreSQL at {make_url(POSTGRES_ADMIN_URL).host} is unreachable: {error.orig}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the test server, dropped afterwards."""
    with _postgres_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'textbook.db'}"


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    """The database of this test run's dialect (TEST_DATABASE)."""
    fixture = "postgres_url" if TEST_DATABASE == "postgres" else "sqlite_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def settings_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str
) -> dict[str, str]:
    """Point every setting at this test's own data directory and database."""
    env = {"DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from textbook_api.config import get_settings

    get_settings.cache_clear()
    return env


ROOT = Path(__file__).resolve().parent


def door_command(door: str, operation: str, *args: str) -> list[str]:
    """The argv of one door into an operation: the shell twin or the invoke task."""
    if door == "script":
        twins = sorted((ROOT / "scripts").glob(f"{operation}.*"))
        assert twins, f"no scripts/ twin for {operation}"
        interpreter = "bash" if twins[0].suffix == ".sh" else os.environ.get("PYTHON", "python3")
        return [interpreter, str(twins[0]), *args]
    import sys

    return [sys.executable, "-m", "invoke", operation, *args]


def door_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    import sys

    return {**os.environ, "PIPELINE_PYTHON": sys.executable, **(extra or {})}


@pytest.fixture(scope="module")
def module_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database shared by one module's tests (for fixtures that outlive a single test)."""
    if TEST_DATABASE == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'textbook.db'}"
        return
    with _postgres_database() as url:
        yield url
