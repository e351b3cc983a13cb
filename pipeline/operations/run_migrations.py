"""run-migrations: bring the database schema to a revision, under a lock, undone on failure.

PostgreSQL runs the whole upgrade in one transaction (transactional DDL) under a session-level
advisory lock; SQLite is backed up first and restored from the backup if a revision fails.
"""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from pipeline.core import Operation, Option, OptionValue, Plan, Run, Step
from pipeline.database import Database
from pipeline.errors import OperationFailed, UsageError
from pipeline.locks import file_lock, postgres_advisory_lock
from textbook_api.config import Settings
from textbook_api.migrate import alembic_config, current_revisions, head_revisions

NAME = "run-migrations"

OPTIONS = (
    Option("revision", "revision to upgrade to", "head", "REV"),
    Option("downgrade", "downgrade to REV instead of upgrading", None, "REV"),
    Option("sql", "write the upgrade's SQL to a file for review; change nothing", False),
    Option("check", "exit 1 when migrations are pending; change nothing", False),
    Option("lock_timeout", "seconds to wait for another run's lock", 30, "SECONDS"),
)


@dataclass
class _Migration:
    """What the migration's steps hand each other."""

    connection: Connection | None = None
    migrated: bool = False


def _connect(database: Database, run: Run, migration: _Migration) -> Connection:
    engine = database.engine(NAME)
    run.resources.callback(engine.dispose)
    try:
        connection = run.resources.enter_context(engine.connect())
    except OperationalError as error:
        raise database.unreachable(error) from None
    migration.connection = connection
    return connection


def _revisions(revisions: set[str]) -> str:
    return ", ".join(sorted(revisions)) or "base (empty)"


def _validate_revision(config: Config, revision: str) -> None:
    try:
        ScriptDirectory.from_config(config).get_revisions(revision)
    except CommandError as error:
        raise UsageError(f"unknown revision {revision!r}: {error}") from None


def _lock_step(database: Database, timeout: int, migration: _Migration) -> Step:
    sqlite_file = database.sqlite_file
    if sqlite_file is not None:
        lock_path = sqlite_file.with_name(sqlite_file.name + ".migrate.lock")

        def take_file_lock(run: Run) -> None:
            run.resources.enter_context(file_lock(lock_path, NAME, timeout))
            _connect(database, run, migration)

        return Step("lock", f"flock {lock_path} (wait at most {timeout}s)", take_file_lock)

    def take_advisory_lock(run: Run) -> None:
        connection = _connect(database, run, migration)
        run.resources.enter_context(postgres_advisory_lock(connection, NAME, timeout))

    return Step(
        "lock", f"pg_try_advisory_lock('{NAME}') (wait at most {timeout}s)", take_advisory_lock
    )


def _backup_step(database_file: Path, migration: _Migration) -> Step:
    backup = database_file.with_name(database_file.name + ".pre-migrate")

    def back_up(run: Run) -> None:
        run.resources.callback(backup.unlink, missing_ok=True)
        if not database_file.exists():
            run.on_failure(f"remove the new {database_file} unless migrated", lambda: (
                None if migration.migrated else database_file.unlink()
            ))
            return
        _copy_database(database_file, backup)
        run.on_failure(f"restore {database_file} from {backup} unless migrated", lambda: (
            None if migration.migrated else _copy_database(backup, database_file)
        ))

    return Step("backup", f"sqlite3 {database_file} .backup {backup}", back_up)


def _copy_database(source_file: Path, target_file: Path) -> None:
    """SQLite's online backup: a consistent copy even while others hold the file open."""
    with closing(sqlite3.connect(source_file)) as source:
        with closing(sqlite3.connect(target_file)) as target:
            source.backup(target)


def _migrate_step(config: Config, revision: str, downgrade: bool, migration: _Migration) -> Step:
    verb = "downgrade" if downgrade else "upgrade"
    migrate: Callable[[Config, str], None] = command.downgrade if downgrade else command.upgrade

    def run_alembic(run: Run) -> None:
        connection = migration.connection
        if connection is None:
            raise OperationFailed("no database connection was opened")
        before = current_revisions(connection)
        connection.commit()  # end the read so that Alembic opens (and commits) its own transaction
        config.attributes["connection"] = connection
        migrate(config, revision)
        # Later steps of a composed run (a deploy) may fail; the schema stays: releases are
        # written to run on the schema before and after each migration.
        migration.migrated = True
        run.console.print(
            f"    {_revisions(before)} -> {_revisions(current_revisions(connection))}"
        )

    return Step(verb, f"alembic {verb} {revision}", run_alembic)


def _check_step(database: Database, config: Config) -> Step:
    def compare(run: Run) -> None:
        current = current_revisions(_connect(database, run, _Migration()))
        heads = head_revisions(config)
        if current != heads:
            raise OperationFailed(
                f"migrations are pending: the database is at {_revisions(current)},"
                f" head is {_revisions(heads)}"
            )
        run.console.print(f"    up to date at {_revisions(heads)}")

    return Step("check", "compare the database revision with head", compare)


def _sql_steps(database: Database, config: Config, revision: str, out_dir: Path) -> list[Step]:
    current: set[str] = set()

    def read_current(run: Run) -> None:
        current.update(current_revisions(_connect(database, run, _Migration())))

    def render(run: Run) -> None:
        start = ",".join(sorted(current)) or "base"
        buffer = io.StringIO()
        config.output_buffer = buffer
        command.upgrade(config, f"{start}:{revision}", sql=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = out_dir / f"{stamp}-{start}-{revision}.sql".replace(",", "+")
        path.write_text(buffer.getvalue(), encoding="utf-8")
        run.artifact("sql-plan", path)

    return [
        Step("current", "read the database revision", read_current),
        Step("render-sql", f"alembic upgrade <current>:{revision} --sql > {out_dir}/", render),
    ]


def plan(settings: Settings, options: Mapping[str, OptionValue]) -> Plan:
    database = Database.from_settings(settings)
    if not (settings.migrations_dir / "env.py").is_file():
        raise UsageError(f"MIGRATIONS_DIR {settings.migrations_dir} holds no Alembic env.py")
    downgrade = options["downgrade"]
    revision = str(downgrade or options["revision"])
    modes = [name for name in ("downgrade", "sql", "check") if options[name]]
    if len(modes) > 1:
        raise UsageError(f"--{modes[0]} and --{modes[1]} cannot be combined")
    if downgrade and options["revision"] != "head":
        raise UsageError("--revision and --downgrade cannot be combined")
    timeout = int(options["lock_timeout"] or 0)
    if timeout < 0:
        raise UsageError("--lock-timeout must be zero or more seconds")
    config = alembic_config(database.raw(), settings.migrations_dir)
    _validate_revision(config, revision)

    steps: list[Step]
    if options["check"]:
        steps = [_check_step(database, config)]
    elif options["sql"]:
        steps = _sql_steps(
            database, config, revision, settings.data_dir.resolve() / "artifacts" / NAME
        )
    else:
        migration = _Migration()
        steps = [_lock_step(database, timeout, migration)]
        if database.sqlite_file is not None:
            steps.append(_backup_step(database.sqlite_file, migration))
        steps.append(_migrate_step(config, revision, bool(downgrade), migration))
    context = {"environment": settings.environment, "database": database.display()}
    return Plan(
        NAME, context, tuple(steps), service="database", target=database.dialect, record_live=False
    )


OPERATION = Operation(
    name=NAME,
    help="Migrate the database schema (Alembic) to a revision, under a lock; undone on failure.",
    options=OPTIONS,
    plan=plan,
)
