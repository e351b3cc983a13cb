"""The audit trail's rules pinned exactly, on the real database of the run (SQLite or PostgreSQL).

Each test states a behaviour that a small change to the service or the redactor would break
unnoticed by the API tests: when `finished_at` is set, what the redactor leaves of nested data,
which secrets it knows and in which order it masks them, the event-data bound to the byte, the
illegal-transition message, and the rollback target.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy.orm import Session

from textbook_api.config import PACKAGE_DIR, Settings
from textbook_api.db import build_engine
from textbook_api.migrate import alembic_config
from textbook_api.redaction import MASK, Redactor, redact_data, secret_values
from textbook_api.services.deployments import (
    MAX_EVENT_DATA_BYTES,
    DeploymentService,
    IllegalTransition,
    PayloadTooLarge,
)

SECRET = "s3cret-value-91ab"


@pytest.fixture
def deployments(database_url: str) -> Iterator[DeploymentService]:
    command.upgrade(alembic_config(database_url, PACKAGE_DIR / "migrations"), "head")
    engine = build_engine(database_url)
    with Session(engine) as session:
        yield DeploymentService(session, Redactor([SECRET]))
    engine.dispose()


def new_job(deployments: DeploymentService, environment: str = "staging") -> int:
    job = deployments.create_job(operation="deploy-backend", service="backend",
                                 environment=environment, target="local")
    return job.id


def test_finished_at_is_set_by_a_final_state_only(deployments: DeploymentService) -> None:
    job = deployments.job(new_job(deployments))
    deployments.transition(job, "in_progress")
    assert job.started_at is not None and job.finished_at is None
    deployments.transition(job, "succeeded")
    finished = job.finished_at
    assert finished is not None
    deployments.transition(job, "rolled_back")
    assert job.finished_at == finished  # the first final state's time stays


def test_an_illegal_transition_names_the_states_allowed(deployments: DeploymentService) -> None:
    job_id = new_job(deployments)
    job = deployments.job(job_id)
    with pytest.raises(IllegalTransition) as raised:
        deployments.transition(job, "succeeded")
    assert str(raised.value) == (
        f"job {job_id} cannot go from queued to succeeded; allowed: in_progress, cancelled")
    deployments.transition(job, "cancelled")
    with pytest.raises(IllegalTransition, match="allowed: none \\(final state\\)$"):
        deployments.transition(job, "in_progress")


def test_event_data_is_bounded_at_exactly_16_kib(deployments: DeploymentService) -> None:
    job = deployments.job(new_job(deployments))
    overhead = len(json.dumps({"x": ""}))  # as the service measures: default separators

    def data(size: int) -> dict[str, str]:
        return {"x": "a" * (size - overhead)}

    event = deployments.append_event(job, "at the bound", data=data(MAX_EVENT_DATA_BYTES))
    assert event.data == data(MAX_EVENT_DATA_BYTES)
    with pytest.raises(PayloadTooLarge, match=f"exceeds {MAX_EVENT_DATA_BYTES} bytes"):
        deployments.append_event(job, "one byte over", data=data(MAX_EVENT_DATA_BYTES + 1))


def test_secrets_inside_event_data_are_masked_at_every_depth(
    deployments: DeploymentService,
) -> None:
    job = deployments.job(new_job(deployments))
    data = {"token": SECRET, "nested": {"list": [SECRET, f"x{SECRET}y", 3, None]},
            "kept": None, "count": 2}
    event = deployments.append_event(job, f"uses {SECRET}", data=data)
    assert event.message == f"uses {MASK}"
    assert event.data == {"token": MASK, "nested": {"list": [MASK, f"x{MASK}y", 3, None]},
                          "kept": None, "count": 2}


def test_the_rollback_target_is_the_newest_succeeded_job_of_that_service_and_environment(
    deployments: DeploymentService,
) -> None:
    assert deployments.last_succeeded("backend", "staging") is None
    ids = []
    for state in ("succeeded", "succeeded", "failed"):
        job = deployments.job(new_job(deployments))
        deployments.transition(job, "in_progress")
        deployments.transition(job, state)
        ids.append(job.id)
    other = deployments.job(new_job(deployments, environment="production"))
    deployments.transition(other, "in_progress")
    deployments.transition(other, "succeeded")
    found = deployments.last_succeeded("backend", "staging")
    assert found is not None and found.id == ids[1]


def test_the_redactor_masks_the_longest_secret_first_and_skips_short_values() -> None:
    redact = Redactor(secret_values(environ={"DEPLOY_API_TOKEN": "abcd",
                                             "COHERE_API_KEY": "abcdef-key",
                                             "QDRANT_API_KEY": "xyz"}))
    assert redact("abcdef-key then abcd then xyz") == f"{MASK} then {MASK} then xyz"


def test_the_database_password_is_a_secret_of_its_own_but_the_url_stays_readable() -> None:
    settings = Settings(database_url="postgresql://deploy:pw-7c1e9@db.internal:5432/textbook",
                        _env_file=None)  # type: ignore[call-arg]
    values = secret_values(settings, environ={})
    assert "pw-7c1e9" in values
    assert not any("db.internal" in value for value in values)
    redact = Redactor(values)
    assert redact("connecting to postgresql://deploy:pw-7c1e9@db.internal:5432/textbook") == (
        f"connecting to postgresql://deploy:{MASK}@db.internal:5432/textbook")
    assert redact("the password pw-7c1e9 alone") == f"the password {MASK} alone"


def test_redact_data_keeps_non_strings_and_masks_keys() -> None:
    redact = Redactor([SECRET])
    assert redact_data({SECRET: [1, 2.5, True, None, (SECRET,)]}, redact) == {
        MASK: [1, 2.5, True, None, [MASK]]}
