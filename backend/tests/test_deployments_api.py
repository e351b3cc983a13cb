"""The deployments API against a real database (SQLite or PostgreSQL, per TEST_DATABASE)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from textbook_api.config import PACKAGE_DIR, get_settings
from textbook_api.db import build_engine
from textbook_api.main import create_app
from textbook_api.migrate import alembic_config
from textbook_api.models import MAX_INTEGER
from textbook_api.redaction import Redactor
from textbook_api.services.deployments import (
    MAX_EVENT_DATA_BYTES,
    TRANSITIONS,
    DeploymentService,
)

TOKEN = "test-deploy-token-7f3a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STATES = list(TRANSITIONS)
PATH_TO = {
    "queued": [],
    "in_progress": ["in_progress"],
    "succeeded": ["in_progress", "succeeded"],
    "failed": ["in_progress", "failed"],
    "cancelled": ["cancelled"],
    "rolled_back": ["in_progress", "succeeded", "rolled_back"],
}


@pytest.fixture
def client(settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("DEPLOY_API_TOKEN", TOKEN)
    get_settings.cache_clear()
    config = alembic_config(settings_env["DATABASE_URL"], PACKAGE_DIR / "migrations")
    command.upgrade(config, "head")
    with TestClient(create_app()) as test_client:
        yield test_client


def new_job(client: TestClient, **fields: str) -> dict[str, object]:
    body = {"operation": "deploy-backend", "service": "backend", "environment": "staging",
            "target": "local", **fields}
    response = client.post("/api/v1/jobs", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    return dict(response.json())


def move(client: TestClient, job_id: object, state: str) -> object:
    return client.post(f"/api/v1/jobs/{job_id}/transitions", json={"state": state}, headers=AUTH)


def test_writes_without_a_token_are_401(client: TestClient) -> None:
    response = client.post("/api/v1/jobs", json={})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_writes_with_a_wrong_token_are_403(client: TestClient) -> None:
    response = client.post(
        "/api/v1/jobs", json={}, headers={"Authorization": "Bearer not-the-token"}
    )
    assert response.status_code == 403
    assert response.json()["detail"] == "the bearer token is not valid"


def test_a_server_without_a_token_refuses_every_write(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEPLOY_API_TOKEN")
    get_settings.cache_clear()
    for token in (TOKEN, "", "anything"):
        response = client.post(
            "/api/v1/jobs", json={}, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code in (401, 403)
    response = client.post("/api/v1/jobs", json={}, headers=AUTH)
    assert response.status_code == 403
    assert "no DEPLOY_API_TOKEN" in response.json()["detail"]
    assert client.get("/api/v1/jobs").json()["total"] == 0


def test_a_job_goes_through_its_states_with_timestamps(client: TestClient) -> None:
    job = new_job(client, git_sha="0123abc", actor="ci", trigger="push")
    assert job["state"] == "queued" and job["started_at"] is None
    started = move(client, job["id"], "in_progress").json()  # type: ignore[attr-defined]
    assert started["state"] == "in_progress" and started["started_at"] is not None
    done = move(client, job["id"], "succeeded").json()  # type: ignore[attr-defined]
    assert done["state"] == "succeeded" and done["finished_at"] is not None
    rolled = move(client, job["id"], "rolled_back").json()  # type: ignore[attr-defined]
    assert rolled["state"] == "rolled_back"


@pytest.mark.parametrize(
    ("current", "requested"),
    [(c, r) for c in STATES for r in STATES if r not in TRANSITIONS[c]],
)
def test_every_illegal_transition_is_409_listing_the_allowed_states(
    client: TestClient, current: str, requested: str
) -> None:
    job = new_job(client)
    for state in PATH_TO[current]:
        assert move(client, job["id"], state).status_code == 200  # type: ignore[attr-defined]
    response = move(client, job["id"], requested)
    assert response.status_code == 409  # type: ignore[attr-defined]
    detail = response.json()["detail"]  # type: ignore[attr-defined]
    assert detail["current"] == current
    assert detail["allowed"] == list(TRANSITIONS[current])
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["state"] == current


def test_events_are_appended_in_sequence_and_artifacts_attached(client: TestClient) -> None:
    job = new_job(client)
    for step in ("build", "migrate", "switch"):
        response = client.post(
            f"/api/v1/jobs/{job['id']}/events",
            json={"message": f"{step} ok", "step": step, "status": "succeeded",
                  "duration_ms": 12, "data": {"step": step}},
            headers=AUTH,
        )
        assert response.status_code == 201
    artifact = {"kind": "wheel", "uri": "file:///tmp/x.whl", "sha256": "a" * 64, "size_bytes": 10}
    assert client.post(
        f"/api/v1/jobs/{job['id']}/artifacts", json=artifact, headers=AUTH
    ).status_code == 201
    detail = client.get(f"/api/v1/jobs/{job['id']}").json()
    assert [e["sequence"] for e in detail["events"]] == [1, 2, 3]
    assert [e["step"] for e in detail["events"]] == ["build", "migrate", "switch"]
    assert detail["artifacts"][0]["sha256"] == "a" * 64


def test_oversized_event_data_is_413_and_nothing_is_stored(client: TestClient) -> None:
    job = new_job(client)
    response = client.post(
        f"/api/v1/jobs/{job['id']}/events",
        json={"message": "big", "data": {"blob": "x" * MAX_EVENT_DATA_BYTES}},
        headers=AUTH,
    )
    assert response.status_code == 413
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["events"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"service": "backend"},
        {"operation": "x", "service": "Back End", "environment": "s", "target": "local"},
        {"operation": "x", "service": "b", "environment": "s", "target": "local", "git_sha": "zz"},
    ],
)
def test_malformed_bodies_are_422(client: TestClient, body: dict[str, str]) -> None:
    assert client.post("/api/v1/jobs", json=body, headers=AUTH).status_code == 422


def test_unknown_ids_are_404(client: TestClient) -> None:
    assert client.get("/api/v1/jobs/999999").status_code == 404
    assert move(client, 999999, "in_progress").status_code == 404  # type: ignore[attr-defined]


def test_filters_and_pagination(client: TestClient) -> None:
    for service, environment in [("backend", "staging"), ("frontend", "staging"),
                                 ("backend", "production"), ("backend", "staging")]:
        new_job(client, service=service, environment=environment)
    first = client.get("/api/v1/jobs", params={"service": "backend", "environment": "staging"})
    assert first.json()["total"] == 2
    assert all(j["service"] == "backend" for j in first.json()["items"])
    job_id = first.json()["items"][0]["id"]
    move(client, job_id, "in_progress")
    in_progress = client.get("/api/v1/jobs", params={"state": "in_progress"}).json()
    assert [j["id"] for j in in_progress["items"]] == [job_id]
    page = client.get("/api/v1/jobs", params={"limit": 3, "offset": 0}).json()
    rest = client.get("/api/v1/jobs", params={"limit": 3, "offset": 3}).json()
    assert page["total"] == rest["total"] == 4
    assert len(page["items"]) == 3 and len(rest["items"]) == 1
    ids = [j["id"] for j in page["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True)
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert client.get("/api/v1/jobs", params={"since": future}).json()["total"] == 0


@pytest.mark.parametrize("params", [
    {"limit": 0}, {"limit": 101}, {"offset": -1}, {"state": "exploded"},
    # Past what the database takes (SQLite raised OverflowError: a 500).
    {"offset": 1181578179166113890304}, {"offset": MAX_INTEGER + 1},
    # `since` is an RFC 3339 date-time with its offset, as the schema says.
    {"since": "7"}, {"since": "0.5"}, {"since": "2026-11-23"}, {"since": "2026-11-23T16:35:14"},
    {"since": "0001-01-01T00:00:00+01:00"},
    # PostgreSQL cannot compare text with a NUL in it (a 500 there).
    {"service": "backend\x00"},
])
def test_out_of_bounds_queries_are_422(client: TestClient, params: dict[str, object]) -> None:
    response = client.get("/api/v1/jobs", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:2] == ["query", next(iter(params))]


@pytest.mark.parametrize("job_id", [0, -1, MAX_INTEGER + 1, 9223372036854775808])
def test_job_ids_out_of_range_are_422(client: TestClient, job_id: int) -> None:
    assert client.get(f"/api/v1/jobs/{job_id}").status_code == 422
    assert move(client, job_id, "in_progress").status_code == 422  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        # 1.2e20 ms overflowed the INTEGER column (SQLite OverflowError, PostgreSQL out of range).
        ("events", {"message": "m", "duration_ms": 120_000_000_000_000_000_000}),
        ("events", {"message": "m", "duration_ms": 1.2e20}),
        ("events", {"message": "m", "duration_ms": MAX_INTEGER + 1}),
        ("events", {"message": "m", "duration_ms": False}),
        ("events", {"message": "nul \x00 inside"}),
        ("artifacts", {"kind": "wheel", "uri": "file:///x", "sha256": "a" * 64,
                       "size_bytes": 2**63}),
    ],
)
def test_out_of_range_bodies_are_422_and_nothing_is_stored(
    client: TestClient, path: str, body: dict[str, object]
) -> None:
    job = new_job(client)
    response = client.post(f"/api/v1/jobs/{job['id']}/{path}", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    detail = client.get(f"/api/v1/jobs/{job['id']}").json()
    assert detail["events"] == detail["artifacts"] == []


@pytest.mark.parametrize("number", ["1e400", "-1e400", "NaN", "Infinity"])
@pytest.mark.parametrize("template", [
    '{{"message": "m", "data": {{"x": [{}]}}}}',  # stored, the job could no longer be read
    '{{"message": "m", "duration_ms": {}}}',  # echoed in FastAPI's 422, which then failed
])
def test_non_finite_numbers_are_422(client: TestClient, number: str, template: str) -> None:
    """Python reads these as floats that JSON cannot write back."""
    job = new_job(client)
    response = client.post(
        f"/api/v1/jobs/{job['id']}/events",
        content=template.format(number),
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["events"] == []


def _is_utc_rfc3339(stamp: object) -> bool:
    return isinstance(stamp, str) and (stamp.endswith("Z") or stamp.endswith("+00:00"))


def test_timestamps_read_back_carry_their_utc_offset(client: TestClient) -> None:
    created = new_job(client)
    moved = move(client, created["id"], "in_progress").json()  # type: ignore[attr-defined]
    client.post(f"/api/v1/jobs/{created['id']}/events", json={"message": "m"}, headers=AUTH)
    read = client.get(f"/api/v1/jobs/{created['id']}").json()
    listed = client.get("/api/v1/jobs").json()["items"][0]
    stamps = [created["created_at"], moved["started_at"], read["created_at"],
              read["started_at"], read["events"][0]["created_at"], listed["created_at"]]
    assert all(_is_utc_rfc3339(stamp) for stamp in stamps), stamps
    assert datetime.fromisoformat(read["created_at"]) == datetime.fromisoformat(
        created["created_at"])


def test_an_instant_given_in_another_zone_is_stored_and_answered_as_utc(
    client: TestClient, settings_env: dict[str, str]
) -> None:
    job = new_job(client)
    plus_two = timezone(timedelta(hours=2))
    at = datetime(2026, 11, 23, 18, 0, tzinfo=plus_two)
    engine = build_engine(settings_env["DATABASE_URL"])
    with Session(engine) as session:
        service = DeploymentService(session, Redactor([]))
        service.transition(service.job(int(str(job["id"]))), "in_progress", at=at)
        session.commit()
        assert service.job(int(str(job["id"]))).started_at == at
    engine.dispose()
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["started_at"] == "2026-11-23T16:00:00Z"


def test_since_compares_instants_whatever_the_offset(client: TestClient) -> None:
    created = datetime.fromisoformat(new_job(client)["created_at"])  # type: ignore[arg-type]
    just_before = (created - timedelta(seconds=1)).astimezone(timezone(timedelta(hours=-5)))
    just_after = (created + timedelta(seconds=1)).astimezone(timezone(timedelta(hours=5)))
    assert client.get("/api/v1/jobs", params={"since": just_before.isoformat()}).json()[
        "total"] == 1
    assert client.get("/api/v1/jobs", params={"since": just_after.isoformat()}).json()[
        "total"] == 0


def test_a_naive_timestamp_is_refused_not_guessed(
    client: TestClient, settings_env: dict[str, str]
) -> None:
    job = new_job(client)
    engine = build_engine(settings_env["DATABASE_URL"])
    with Session(engine) as session:
        service = DeploymentService(session, Redactor([]))
        with pytest.raises(StatementError, match="naive datetime 2026-11-23T00:00:00"):
            service.transition(service.job(int(str(job["id"]))), "in_progress",
                               at=datetime(2026, 11, 23))
    engine.dispose()


@pytest.mark.parametrize(
    ("path", "allow"),
    [("/api/v1/jobs", "GET, POST"), ("/api/v1/jobs/1", "GET"),
     ("/api/v1/jobs/1/events", "POST"), ("/api/v1/configurations/a/b/local", "PUT"),
     ("/health", "GET")],
)
@pytest.mark.parametrize("method", ["OPTIONS", "DELETE"])
def test_unserved_methods_are_405_listing_every_method_of_the_path(
    client: TestClient, path: str, allow: str, method: str
) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert "access-control-allow-origin" not in response.headers


def test_405_lists_the_api_methods_where_the_site_is_mounted_too(
    settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<p>book</p>")
    monkeypatch.setenv("SITE_DIR", str(tmp_path / "site"))
    get_settings.cache_clear()
    with TestClient(create_app()) as test_client:
        assert test_client.get("/").status_code == 200
        api = test_client.options("/api/v1/jobs")
        site = test_client.options("/index.html")
    get_settings.cache_clear()
    assert (api.status_code, api.headers["allow"]) == (405, "GET, POST")
    assert (site.status_code, site.headers["allow"]) == (405, "GET, HEAD")


def test_every_route_declares_the_errors_it_answers(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    declared = {(method.upper(), path): set(operation["responses"])
                for path, methods in paths.items() for method, operation in methods.items()}
    writes = {"400", "401", "403", "422"}
    assert declared[("POST", "/api/v1/jobs")] >= writes
    assert declared[("POST", "/api/v1/jobs/{job_id}/transitions")] >= writes | {"404", "409"}
    assert declared[("POST", "/api/v1/jobs/{job_id}/events")] >= writes | {"404", "413"}
    assert declared[("POST", "/api/v1/jobs/{job_id}/artifacts")] >= writes | {"404"}
    assert declared[("PUT", "/api/v1/configurations/{service}/{environment}/{target}")] >= (
        writes | {"413"})
    assert declared[("GET", "/api/v1/jobs/{job_id}")] >= {"404", "422"}
    assert declared[("POST", "/api/v1/query")] >= {"400", "422", "503"}
    unauthorised = paths["/api/v1/jobs"]["post"]["responses"]["401"]
    assert unauthorised["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorOut"}


def test_configurations_are_validated_and_listed(client: TestClient) -> None:
    url = "/api/v1/configurations/backend/staging/local"
    saved = client.put(url, json={"settings": {"health_url": "http://127.0.0.1:8000/ready"}},
                       headers=AUTH)
    assert saved.status_code == 200
    assert client.put("/api/v1/configurations/backend/staging/mars", json={},
                      headers=AUTH).status_code == 422
    listed = client.get("/api/v1/configurations").json()
    assert [(c["service"], c["target"]) for c in listed] == [("backend", "local")]
    job = new_job(client)
    assert job["id"]


def test_secrets_sent_by_a_reporter_are_masked_before_storage(
    client: TestClient, settings_env: dict[str, str]
) -> None:
    job = new_job(client)
    client.post(f"/api/v1/jobs/{job['id']}/events",
                json={"message": f"leaked {TOKEN}", "data": {"token": TOKEN}}, headers=AUTH)
    engine = build_engine(settings_env["DATABASE_URL"])
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT message, data FROM deployment_event")).all()
    engine.dispose()
    assert TOKEN not in repr(rows)
    assert "***" in rows[0][0]


def test_ready_is_503_until_the_schema_is_at_head(
    settings_env: dict[str, str],
) -> None:
    with TestClient(create_app()) as test_client:
        behind = test_client.get("/ready")
        assert behind.status_code == 503
        assert "run run-migrations" in behind.json()["detail"]
        config = alembic_config(settings_env["DATABASE_URL"], PACKAGE_DIR / "migrations")
        command.upgrade(config, "head")
        assert test_client.get("/ready").json() == {"status": "ready", "revision": "0001"}
        command.downgrade(config, "base")
        assert test_client.get("/ready").status_code == 503


def test_ready_is_503_when_the_database_is_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    get_settings.cache_clear()
    with TestClient(create_app()) as test_client:
        response = test_client.get("/ready")
    get_settings.cache_clear()
    assert response.status_code == 503
    assert response.json()["detail"].startswith("database unreachable")
