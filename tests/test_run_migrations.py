"""run-migrations against real SQLite and PostgreSQL databases."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from conftest import ROOT, TEST_DATABASE, advisory_lock_holders, door_command, door_env
from pipeline import cli
from textbook_api.config import PACKAGE_DIR
from textbook_api.db import build_engine

FAILING_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("UPDATE deployment_configuration SET target = 'changed'")
    raise RuntimeError("revision 0002 fails on purpose")


def downgrade() -> None:
    op.drop_table("half_done")
"""

SLOW_REVISION = '''
import time
from pathlib import Path

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Holds the lock until the test creates the release file."""
    deadline = time.monotonic() + 60
    while not Path(RELEASE).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def downgrade() -> None:
    pass
'''


def migrations_with(tmp_path: Path, revision_source: str) -> Path:
    """A copy of the packaged migrations with one more revision on top."""
    folder = tmp_path / "migrations"
    shutil.copytree(
        PACKAGE_DIR / "migrations", folder, ignore=shutil.ignore_patterns("__pycache__")
    )
    (folder / "versions" / "0002_extra.py").write_text(revision_source, encoding="utf-8")
    return folder


AUDIT_TABLES = {"deployment_job", "deployment_event", "deployment_artifact"}


def snapshot(url: str) -> dict[str, Any]:
    """Every table's columns and rows: equal snapshots mean an unchanged database.

    The audit tables' rows are left out: every run, failed ones too, adds its own record.
    """
    engine = build_engine(url)
    with engine.connect() as connection:
        tables = sorted(inspect(connection).get_table_names())
        state = {
            table: (
                [column["name"] for column in inspect(connection).get_columns(table)],
                (
                    []
                    if table in AUDIT_TABLES
                    else sorted(map(tuple, connection.execute(text(f'SELECT * FROM "{table}"'))))
                ),
            )
            for table in tables
        }
    engine.dispose()
    return state


def recorded_jobs(url: str) -> list[tuple[str, str]]:
    engine = build_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT operation, state FROM deployment_job ORDER BY id"))
        jobs = [(row.operation, row.state) for row in rows]
    engine.dispose()
    return jobs


def migrate(*args: str) -> int:
    return cli.main(["run-migrations", *args])


def test_upgrade_creates_the_schema_and_check_agrees(
    settings_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert migrate("--check") == 1
    assert "migrations are pending" in capsys.readouterr().err
    assert migrate() == 0
    tables = snapshot(settings_env["DATABASE_URL"])
    assert {"deployment_job", "deployment_event", "alembic_version"} <= set(tables)
    assert tables["alembic_version"][1] == [("0001",)]
    assert migrate("--check") == 0
    assert "up to date at 0001" in capsys.readouterr().out


def test_downgrade_to_base_removes_the_schema(settings_env: dict[str, str]) -> None:
    assert migrate() == 0
    assert migrate("--downgrade", "base") == 0
    assert set(snapshot(settings_env["DATABASE_URL"])) == {"alembic_version"}


def test_sql_writes_a_reviewable_file_and_leaves_the_database_alone(
    settings_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(settings_env["DATABASE_URL"])
    assert migrate("--sql") == 0
    sql_files = list(
        (Path(settings_env["DATA_DIR"]) / "artifacts" / "run-migrations").glob("*.sql")
    )
    assert len(sql_files) == 1
    assert "CREATE TABLE deployment_job" in sql_files[0].read_text()
    assert str(sql_files[0]) in capsys.readouterr().out
    assert snapshot(settings_env["DATABASE_URL"]) == before


def test_dry_run_prints_the_plan_and_touches_nothing(
    settings_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(settings_env["DATABASE_URL"])
    assert migrate("--dry-run") == 0
    out = capsys.readouterr().out
    assert "alembic upgrade head" in out
    assert "dry run: nothing was changed" in out
    assert snapshot(settings_env["DATABASE_URL"]) == before


def test_a_failing_revision_leaves_the_database_exactly_as_before(
    settings_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = settings_env["DATABASE_URL"]
    assert migrate() == 0
    engine = build_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO deployment_configuration"
                " (service, environment, target, settings, created_at, updated_at)"
                " VALUES ('backend', 'staging', 'local', '{}',"
                " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    engine.dispose()
    before = snapshot(url)
    monkeypatch.setenv("MIGRATIONS_DIR", str(migrations_with(tmp_path, FAILING_REVISION)))

    assert migrate() == 1

    err = capsys.readouterr().err
    assert "revision 0002 fails on purpose" in err
    assert snapshot(url) == before
    assert recorded_jobs(url)[-1] == ("run-migrations", "failed")
    if TEST_DATABASE == "sqlite":
        assert not list(Path(settings_env["DATA_DIR"]).glob("*.pre-migrate"))


def test_unknown_revision_is_a_usage_error(
    settings_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert migrate("--revision", "nope") == 2
    assert "unknown revision 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [("--sql", "--check"), ("--downgrade", "base", "--revision", "0001"), ("--lock-timeout", "-1")],
)
def test_conflicting_options_are_usage_errors(
    settings_env: dict[str, str], args: tuple[str, ...]
) -> None:
    assert migrate(*args) == 2


@pytest.mark.integration
def test_unknown_option_exits_2_with_usage(tmp_path: Path) -> None:
    result = subprocess.run(
        door_command("script", "run-migrations", "--bogus"),
        env=door_env({"DATA_DIR": str(tmp_path)}),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "usage: run-migrations" in result.stderr
    assert "--bogus" in result.stderr


def test_malformed_database_url_names_the_variable_and_masks_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://deploy:hunter2secret@db:notaport/app")
    assert migrate("--dry-run") == 2
    captured = capsys.readouterr()
    assert "DATABASE_URL is malformed" in captured.err
    assert "hunter2secret" not in captured.err + captured.out


def test_unreachable_database_exits_1_naming_host_and_port(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://deploy:hunter2secret@127.0.0.1:9/app")
    assert migrate("--lock-timeout", "0") == 1
    captured = capsys.readouterr()
    assert "cannot reach the database at 127.0.0.1:9" in captured.err
    assert "hunter2secret" not in captured.err + captured.out


def _wait_for_lock_holder(url: str, lock_file: Path | None, deadline: float) -> None:
    while time.monotonic() < deadline:
        if lock_file is not None:
            if lock_file.exists() and lock_file.read_text():
                return
        else:
            engine = build_engine(url)
            with engine.connect() as connection:
                held = advisory_lock_holders(connection, "run-migrations")
            engine.dispose()
            if held:
                return
        time.sleep(0.1)
    raise AssertionError("the first run never took the lock")


@pytest.mark.integration
def test_a_concurrent_run_exits_3_naming_the_holder(
    settings_env: dict[str, str], tmp_path: Path
) -> None:
    url = settings_env["DATABASE_URL"]
    assert migrate() == 0
    release = tmp_path / "release"
    slow = SLOW_REVISION.replace("RELEASE", repr(str(release)))
    env = door_env({**settings_env, "MIGRATIONS_DIR": str(migrations_with(tmp_path, slow))})
    first = subprocess.Popen(
        door_command("script", "run-migrations"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock_file = None
    if TEST_DATABASE == "sqlite":
        lock_file = Path(settings_env["DATA_DIR"]) / "textbook.db.migrate.lock"
    _wait_for_lock_holder(url, lock_file, time.monotonic() + 20)

    second = subprocess.run(
        door_command("invoke", "run-migrations", "--lock-timeout", "1"),
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    release.touch()
    first_out, first_err = first.communicate(timeout=60)

    assert second.returncode == 3, second.stdout + second.stderr
    assert f"textbook-pipeline run-migrations pid={first.pid}" in second.stderr
    assert first.returncode == 0, first_err
    assert "0001 -> 0002" in first_out
    assert snapshot(url)["alembic_version"][1] == [("0002",)]


def test_the_sqlite_backup_is_restored_when_a_revision_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    """SQLite commits DDL as it goes: only the backup can undo a half-applied revision."""
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    assert migrate() == 0
    before = snapshot(sqlite_url)
    monkeypatch.setenv("MIGRATIONS_DIR", str(migrations_with(tmp_path, FAILING_REVISION)))
    assert migrate() == 1
    assert snapshot(sqlite_url) == before
    assert os.path.exists(sqlite_url.removeprefix("sqlite:///"))
