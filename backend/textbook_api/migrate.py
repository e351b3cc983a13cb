"""Alembic configuration built from settings, shared by the pipeline and the readiness probe.

`python -m textbook_api.migrate` upgrades the database of the settings (DATABASE_URL) to the
migrations' head: the container image's migration command (the Helm chart's pre-upgrade hook),
where the pipeline and its run-migrations operation are not installed.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from textbook_api.config import get_settings


def alembic_config(url: str, migrations_dir: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    # ConfigParser interpolation would choke on '%' in passwords.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revisions(config: Config) -> set[str]:
    return set(ScriptDirectory.from_config(config).get_heads())


def current_revisions(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


def main() -> None:
    settings = get_settings()
    command.upgrade(alembic_config(settings.sqlalchemy_url, settings.migrations_dir), "head")


if __name__ == "__main__":
    main()
