"""`alembic check`: the models and the migrations describe the same schema, on either dialect."""

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData

from textbook_api.config import PACKAGE_DIR
from textbook_api.db import build_engine
from textbook_api.migrate import alembic_config
from textbook_api.models import Base


def test_models_match_the_migrations(database_url: str) -> None:
    config = alembic_config(database_url, PACKAGE_DIR / "migrations")
    command.upgrade(config, "head")
    command.check(config)


def test_the_comparison_notices_a_model_change_without_a_migration(database_url: str) -> None:
    command.upgrade(alembic_config(database_url, PACKAGE_DIR / "migrations"), "head")
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["deployment_job"].append_column(Column("not_migrated", Integer))
    engine = build_engine(database_url)
    with engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), changed)
    engine.dispose()
    assert [(d[0], d[3].name) for d in diffs] == [("add_column", "not_migrated")]
