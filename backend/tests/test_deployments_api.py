"""The deployments API against a real database (SQLite or PostgreSQL, per TEST_DATABASE)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import text

from textbook_api.config import PACKAGE_DIR, get_settings
from textbook_api.db import build_engine
from textbook_api.main import create_app
from textbook_api.migrate import alembic_config
from textbook_api.services.deployments import MAX_EVENT_DATA_BYTES, TRANSITIONS

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


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"offset": -1},
                                    {"state": "exploded"}])
def test_out_of_bounds_queries_are_422(client: TestClient, params: dict[str, object]) -> None:
    assert client.get("/api/v1/jobs", params=params).status_code == 422


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
