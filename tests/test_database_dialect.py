import os
import re
import subprocess
import sys

from sqlalchemy import text

from conftest import ROOT, TEST_DATABASE
from textbook_api.db import build_engine


def test_the_test_database_is_the_dialect_the_session_asked_for(database_url: str) -> None:
    engine = build_engine(database_url)
    with engine.connect() as connection:
        if TEST_DATABASE == "postgres":
            version = connection.execute(text("SELECT version()")).scalar_one()
            assert engine.dialect.name == "postgresql"
            assert str(version).startswith("PostgreSQL")
            port = connection.execute(text("SELECT inet_server_port()")).scalar_one()
            assert port == (engine.url.port or 5432)
        else:
            assert engine.dialect.name == "sqlite"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    engine.dispose()


def collect(database: str, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "--no-cov", "-p",
         "no:cacheprovider", path],
        cwd=ROOT, env={**os.environ, "TEST_DATABASE": database}, capture_output=True, text=True,
        check=False,
    )


def test_a_postgres_session_leaves_out_the_database_independent_tests() -> None:
    independent = "tests/test_bench_prerequisites.py"  # database_independent, all of it
    on_sqlite = collect("sqlite", independent)
    assert on_sqlite.returncode == 0, on_sqlite.stdout + on_sqlite.stderr
    count = re.search(r"(\d+) tests collected", on_sqlite.stdout)
    assert count and int(count.group(1)) > 0
    on_postgres = collect("postgres", independent)
    assert on_postgres.returncode == 5  # pytest's "no tests ran"
    assert f"no tests collected ({count.group(1)} deselected)" in on_postgres.stdout


def test_a_postgres_session_runs_only_the_tests_that_use_its_database() -> None:
    """A test without a database fixture does the same work on either dialect: the PostgreSQL
    session leaves it to the SQLite one."""
    this = "tests/test_database_dialect.py"
    on_sqlite, on_postgres = collect("sqlite", this), collect("postgres", this)
    assert on_sqlite.returncode == 0 and on_postgres.returncode == 0, on_postgres.stderr
    assert len([line for line in on_sqlite.stdout.splitlines() if "::" in line]) == 3
    assert [line for line in on_postgres.stdout.splitlines() if "::" in line] == [
        f"{this}::test_the_test_database_is_the_dialect_the_session_asked_for"
    ]
