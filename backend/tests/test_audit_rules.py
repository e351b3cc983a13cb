"""The audit trail's rules pinned exactly, on the real database of the run (SQLite or PostgreSQL).

Each test states a behaviour that a small change to the service or the redactor would break
unnoticed by the API tests: when `finished_at` is set, what the redactor leaves of nested data,
which secrets it knows and in which order it masks them, the event-data bound to the byte, the
illegal-transition message, and the rollback target. `nox -s mutation` measures how many such
changes these tests notice (README, "Mutation testing").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Result, event, insert, inspect
from sqlalchemy.orm import ORMExecuteState, Session

from textbook_api.config import PACKAGE_DIR, Settings
from textbook_api.db import build_engine
from textbook_api.migrate import alembic_config
from textbook_api.models import DeploymentEvent
from textbook_api.redaction import MASK, Redactor, redact_data, secret_values
from textbook_api.services.deployments import (
    MAX_CONFIGURATION_BYTES,
    MAX_EVENT_DATA_BYTES,
    DeploymentService,
    DomainError,
    IllegalTransition,
    InvalidConfiguration,
    JobFilter,
    NotFound,
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


def new_job(deployments: DeploymentService, environment: str = "staging",
            service: str = "backend", target: str = "local") -> int:
    job = deployments.create_job(operation="deploy-backend", service=service,
                                 environment=environment, target=target)
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
    assert (raised.value.current, raised.value.requested, raised.value.allowed) == (
        "queued", "succeeded", ("in_progress", "cancelled"))
    deployments.transition(job, "cancelled")
    with pytest.raises(IllegalTransition, match="allowed: none \\(final state\\)$"):
        deployments.transition(job, "in_progress")


def sized(size: int) -> dict[str, str]:
    """A JSON object of exactly `size` bytes, as the service measures (default separators)."""
    return {"x": "a" * (size - len(json.dumps({"x": ""})))}


def test_event_data_is_bounded_at_exactly_16_kib(deployments: DeploymentService) -> None:
    job = deployments.job(new_job(deployments))
    data = sized

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
    for other_id in (new_job(deployments, environment="production"),
                     new_job(deployments, service="frontend")):
        other = deployments.job(other_id)
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


# (service, environment, target): for each key, two that differ in it alone; and for each key,
# two whose order by that key is the opposite of their order by the other two.
CONFIGURATIONS = [("backend", "staging", "local"), ("frontend", "staging", "local"),
                  ("backend", "production", "local"), ("backend", "staging", "vercel"),
                  ("backend", "production", "vercel"), ("frontend", "production", "railway")]


@pytest.mark.parametrize("names", [
    {"service": "Backend"}, {"environment": "staging env"}, {"operation": "-deploy"},
    {"target": "x" * 65},
])
def test_each_name_of_a_job_is_validated(
    deployments: DeploymentService, names: dict[str, str]
) -> None:
    fields = {"operation": "deploy-backend", "service": "backend", "environment": "staging",
              "target": "local", **names}
    with pytest.raises(InvalidConfiguration) as raised:
        deployments.create_job(**fields)
    [(key, value)] = names.items()
    assert str(raised.value) == (
        f"{key} {value!r} must be lowercase letters, digits and '-' (at most 64)")


@pytest.mark.parametrize(("names", "message"), [
    ({"service": "Backend"}, "service 'Backend' must be lowercase letters"),
    ({"environment": "Staging"}, "environment 'Staging' must be lowercase letters"),
    ({"target": "heroku"}, "target 'heroku' is not one of local, vercel, railway, kubernetes"),
])
def test_a_configuration_is_validated(
    deployments: DeploymentService, names: dict[str, str], message: str
) -> None:
    fields = {"service": "backend", "environment": "staging", "target": "local", **names}
    with pytest.raises(InvalidConfiguration) as raised:
        deployments.save_configuration(settings={}, **fields)
    assert str(raised.value).startswith(message)


def test_configuration_settings_are_bounded_at_exactly_16_kib(
    deployments: DeploymentService,
) -> None:
    saved = deployments.save_configuration("backend", "staging", "local",
                                           sized(MAX_CONFIGURATION_BYTES))
    assert saved.settings == sized(MAX_CONFIGURATION_BYTES)
    with pytest.raises(PayloadTooLarge) as raised:
        deployments.save_configuration("backend", "staging", "local",
                                       sized(MAX_CONFIGURATION_BYTES + 1))
    assert str(raised.value) == f"settings exceed {MAX_CONFIGURATION_BYTES} bytes"


def test_saving_a_configuration_again_updates_that_one_only(
    deployments: DeploymentService,
) -> None:
    ids = {key: deployments.save_configuration(*key, {"v": 1}).id for key in CONFIGURATIONS}
    for number, key in enumerate(CONFIGURATIONS):
        assert deployments.save_configuration(*key, {"v": number, "token": SECRET}).id == ids[key]
    listed = deployments.configurations()
    assert [(c.service, c.environment, c.target) for c in listed] == sorted(CONFIGURATIONS)
    assert {(c.service, c.environment, c.target): c.settings for c in listed} == {
        key: {"v": number, "token": MASK} for number, key in enumerate(CONFIGURATIONS)}


def test_a_job_keeps_what_it_was_created_with_and_links_its_configuration(
    deployments: DeploymentService,
) -> None:
    ids = {key: deployments.save_configuration(*key, {}).id for key in CONFIGURATIONS}
    for key in CONFIGURATIONS:
        job = deployments.create_job(operation="deploy", service=key[0], environment=key[1],
                                     target=key[2])
        assert job.configuration_id == ids[key]
    job = deployments.create_job(
        operation="rollback", service="backend", environment="staging", target="kubernetes",
        git_sha="a" * 40, git_ref=f"refs/heads/{SECRET}", actor=f"ci {SECRET}", trigger="push")
    deployments.session.expire_all()
    assert (job.operation, job.service, job.environment, job.target, job.state) == (
        "rollback", "backend", "staging", "kubernetes", "queued")
    assert (job.git_sha, job.git_ref, job.actor, job.trigger, job.configuration_id) == (
        "a" * 40, f"refs/heads/{MASK}", f"ci {MASK}", "push", None)


def test_a_failed_job_keeps_its_error_redacted(deployments: DeploymentService) -> None:
    job = deployments.job(new_job(deployments))
    deployments.transition(job, "in_progress")
    deployments.transition(job, "failed", error=f"login with {SECRET} refused")
    deployments.session.expire_all()
    assert (job.state, job.error) == ("failed", f"login with {MASK} refused")


def test_an_unknown_job_is_not_found_by_its_id(deployments: DeploymentService) -> None:
    with pytest.raises(NotFound) as raised:
        deployments.job(4242)
    assert str(raised.value) == "no deployment job 4242"


def test_a_job_is_loaded_with_its_events_and_artifacts(deployments: DeploymentService) -> None:
    job = deployments.job(new_job(deployments))
    deployments.append_event(job, "started")
    deployments.attach_artifact(job, kind="site", uri="file:///x", sha256="0" * 64, size_bytes=1)
    deployments.session.expunge_all()
    loaded = deployments.job(job.id)
    # Loaded in the same round trip, not lazily on first access (one query per relationship).
    assert not {"events", "artifacts"} & inspect(loaded).unloaded
    assert [e.message for e in loaded.events] == ["started"] and len(loaded.artifacts) == 1


def test_an_event_keeps_every_field_it_was_given(deployments: DeploymentService) -> None:
    job = deployments.job(new_job(deployments))
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    event = deployments.append_event(job, "built", level="warning", step="build",
                                     status="succeeded", duration_ms=1234, at=at)
    deployments.session.expire_all()
    assert (event.sequence, event.created_at, event.level, event.step, event.status,
            event.duration_ms, event.message, event.data) == (
        1, at, "warning", "build", "succeeded", 1234, "built", {})


def contend(deployments: DeploymentService, job_id: int, writes: int) -> list[int]:
    """Another writer takes the next sequence number right after each of the service's reads of
    the newest one, `writes` times: the service's insert then meets the unique constraint."""
    taken: list[int] = []

    @event.listens_for(deployments.session, "do_orm_execute")
    def take_next(state: ORMExecuteState) -> Result[Any] | None:
        if len(taken) == writes or "max" not in str(state.statement).lower():
            return None
        newest = state.invoke_statement().freeze()  # what the service will read
        sequence = (newest().scalar() or 0) + 1
        state.session.connection().execute(insert(DeploymentEvent).values(
            job_id=job_id, sequence=sequence, created_at=datetime.now(UTC), level="info",
            message="other writer", data={}))
        taken.append(sequence)
        return newest()

    return taken


def test_an_event_takes_the_next_sequence_when_another_writer_took_one(
    deployments: DeploymentService,
) -> None:
    job = deployments.job(new_job(deployments))
    taken = contend(deployments, job.id, writes=2)
    event = deployments.append_event(job, "mine")
    assert taken == [1, 2] and event.sequence == 3


def test_an_event_gives_up_after_three_contended_tries(deployments: DeploymentService) -> None:
    job = deployments.job(new_job(deployments))
    taken = contend(deployments, job.id, writes=10)
    with pytest.raises(DomainError) as raised:
        deployments.append_event(job, "mine")
    assert str(raised.value) == (
        f"could not append an event to job {job.id}: too much contention")
    assert taken == [1, 2, 3]


def test_jobs_since_an_instant_include_a_job_created_at_that_instant(
    deployments: DeploymentService,
) -> None:
    job = deployments.job(new_job(deployments))
    found, total = deployments.jobs(JobFilter(since=job.created_at), limit=10, offset=0)
    assert [j.id for j in found] == [job.id] and total == 1


def test_the_database_url_of_the_environment_gives_its_password_alone() -> None:
    url = "postgresql://deploy:pw-env-42@db.internal/textbook"  # pragma: allowlist secret
    assert secret_values(environ={"DATABASE_URL": url}) == ["pw-env-42"]
    # A password with an '@' in it: the URL parser reads it whole where the pattern stops.
    at = secret_values(environ={"DATABASE_URL": "postgresql://deploy:p@ss-word@db/textbook"})
    assert "p@ss-word" in at
    assert secret_values(environ={"DATABASE_URL": "postgresql://[::1"}) == []  # malformed


def test_the_redactor_from_the_environment_knows_its_secret_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COHERE_API_KEY", "env-cohere-key-5")
    assert Redactor.from_environment()("key env-cohere-key-5") == f"key {MASK}"
