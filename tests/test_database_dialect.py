import os
import re
import subprocess
import sys

import pytest
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


INDEPENDENT = "tests/test_bench_prerequisites.py"  # database_independent, all of it
THIS = "tests/test_database_dialect.py"


@pytest.fixture(scope="module")
def collected() -> dict[str, subprocess.CompletedProcess[str]]:
    """`pytest --collect-only` of both files as each dialect's session sees them (one run per
    dialect: a collection imports every plugin and costs seconds)."""
    return {
        database: subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "--no-cov", "-p",
             "no:cacheprovider", INDEPENDENT, THIS],
            cwd=ROOT, env={**os.environ, "TEST_DATABASE": database}, capture_output=True,
            text=True, check=False,
        )
        for database in ("sqlite", "postgres")
    }


def node_ids(result: subprocess.CompletedProcess[str], path: str) -> list[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if line.startswith(f"{path}::")]


# Under pytest-xdist the two tests share one worker, so its two collections run once, not on each.
@pytest.mark.xdist_group("collected")
def test_a_postgres_session_leaves_out_the_database_independent_tests(
    collected: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    independent = node_ids(collected["sqlite"], INDEPENDENT)
    assert independent
    assert node_ids(collected["postgres"], INDEPENDENT) == []
    deselected = re.search(r"\((\d+) deselected\)", collected["postgres"].stdout)
    assert deselected and int(deselected.group(1)) == len(independent) + 2  # + this file's two


@pytest.mark.xdist_group("collected")
def test_a_postgres_session_runs_only_the_tests_that_use_its_database(
    collected: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    """A test without a database fixture does the same work on either dialect: the PostgreSQL
    session leaves it to the SQLite one."""
    assert len(node_ids(collected["sqlite"], THIS)) == 3
    assert node_ids(collected["postgres"], THIS) == [
        f"{THIS}::test_the_test_database_is_the_dialect_the_session_asked_for"
    ]
