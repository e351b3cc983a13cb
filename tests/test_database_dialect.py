from sqlalchemy import text

from conftest import TEST_DATABASE
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
