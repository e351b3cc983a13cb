"""The PostgreSQL test databases: each test's is empty, whatever the test before it left."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from conftest import POSTGRES_ADMIN_URL, PostgresDatabases


def databases_on_the_server() -> set[str]:
    engine = create_engine(POSTGRES_ADMIN_URL)
    with engine.connect() as connection:
        found = set(connection.execute(text(
            "SELECT datname FROM pg_database WHERE datname LIKE 'textbook_test_%'")).scalars())
    engine.dispose()
    return found


def test_a_database_comes_back_empty_with_its_leftover_connections_ended() -> None:
    databases = PostgresDatabases()
    try:
        with databases.database() as first:
            engine = create_engine(first)
            with engine.begin() as connection:
                connection.execute(text("CREATE TABLE leftover (x int)"))
                connection.execute(text("CREATE SCHEMA extra"))
                connection.execute(text("CREATE TABLE extra.more (x int)"))
            lingering = engine.connect()  # still open when the test ends
            lingering.execute(text("SELECT 1"))
        with databases.database() as second:
            assert second == first  # the same database, made once
            check = create_engine(second)
            with check.connect() as connection:
                assert inspect(connection).get_schema_names() == ["information_schema", "public"]
                assert inspect(connection).get_table_names() == []
            check.dispose()
        lingering.invalidate()  # the server ended it: nothing to close politely
        engine.dispose()
    finally:
        databases.drop_all()
    assert make_url(first).database not in databases_on_the_server()
