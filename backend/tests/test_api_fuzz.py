"""A property-based fuzz of the API's own OpenAPI schema (schemathesis), on a real database.

Every operation gets generated requests (`test_every_operation`): schemathesis' coverage cases
(boundaries, missing auth, undeclared methods) and random ones, valid and invalid. A state
machine then chains operations through the links schemathesis infers from the schema (a job
created, then read, moved, given events and artifacts: `test_operation_sequences`). Each answer
must pass: no 5xx; a status code, content type and body the schema declares; invalid input
refused; an undeclared method answered 405 with an `Allow` that agrees with the schema. Writes
carry the bearer token, so they get past the guard.

Bounded in examples, with no per-example deadline (a PostgreSQL round trip varies): about 1,000
requests and 20-25 s of CPU per database. TEST_DATABASE picks SQLite or PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from alembic import command
from hypothesis import HealthCheck
from sqlalchemy import Engine
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from textbook_api.config import PACKAGE_DIR, get_settings
from textbook_api.db import build_engine
from textbook_api.main import app
from textbook_api.migrate import alembic_config
from textbook_api.models import Base
from textbook_api.services import retrieval
from test_query_api import index

# On each database, on the measured Python only: what it explores is inputs, which the
# interpreter does not change (the API tests run on every Python).
pytestmark = pytest.mark.fuzz

TOKEN = "fuzz-deploy-token-52c1"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    unsupported_method,
    allow_header_conformance,
]
FUZZ_SETTINGS = hypothesis.settings(
    max_examples=40,
    deadline=None,
    database=None,
    # The app, its database and its index are made once for the module, not per example.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# The schema the app serves. The app reads its settings per request, so `fuzz_env` below points
# it at a database and an index of this module's own before the first request.
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(scope="module")
def fuzz_env(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """A migrated database (its engine), a small indexed corpus (so queries answer 200, not
    503) and a server that accepts writes, shared by the tests here."""
    data_dir = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DATA_DIR", str(data_dir / "data"))
        env.setenv("DATABASE_URL", module_database_url)
        env.setenv("DEPLOY_API_TOKEN", TOKEN)
        get_settings.cache_clear()
        command.upgrade(alembic_config(module_database_url, PACKAGE_DIR / "migrations"), "head")
        index(data_dir)
        engine = build_engine(module_database_url)
        yield engine
        engine.dispose()
        retrieval.release_readers()
    get_settings.cache_clear()


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation(case: schemathesis.Case, fuzz_env: Engine) -> None:
    case.call_and_validate(headers=AUTH, checks=CHECKS)


def test_operation_sequences(fuzz_env: Engine) -> None:
    class Sequences(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Each scenario starts from empty tables, so the same choices meet the same answers
            # (Hypothesis replays scenarios to shrink them and refuses ones that drift).
            with fuzz_env.begin() as connection:
                for table in reversed(Base.metadata.sorted_tables):
                    connection.execute(table.delete())

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": AUTH}

        def validate_response(
            self, response: schemathesis.Response, case: schemathesis.Case, **kwargs: Any
        ) -> None:
            case.validate_response(response, checks=CHECKS, headers=AUTH)

    Sequences.run(
        settings=hypothesis.settings(FUZZ_SETTINGS, max_examples=25, stateful_step_count=6)
    )
