"""Every run is recorded; status and monitor read the record; secrets reach none of it."""

from __future__ import annotations

import http.server
import json
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text

from conftest import ROOT, TEST_DATABASE, advisory_lock_holders, door_command, door_env
from pipeline import cli
from textbook_api.config import get_settings
from textbook_api.db import build_engine
from textbook_api.main import create_app
from test_run_migrations import SLOW_REVISION, migrations_with

CANARY = "canary-5e3b9d0c71f4"


def rows_of(url: str) -> dict[str, list[tuple[object, ...]]]:
    engine = build_engine(url)
    with engine.connect() as connection:
        tables = inspect(connection).get_table_names()
        dump = {t: [tuple(r) for r in connection.execute(text(f'SELECT * FROM "{t}"'))]
                for t in tables}
    engine.dispose()
    return dump


def test_a_run_is_recorded_with_its_steps_and_shown_by_status(
    settings_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run-migrations"]) == 0
    assert cli.main(["run-migrations", "--sql"]) == 0
    out = capsys.readouterr().out
    assert "run-migrations: recorded as job 1" in out
    assert "run-migrations: recorded as job 2" in out

    assert cli.main(["status"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split()[:6] == ["JOB", "OPERATION", "SERVICE", "ENV", "TARGET", "STATE"]
    assert [line.split()[:6] for line in listing[2:4]] == [
        ["2", "run-migrations", "database", "local", listing[2].split()[4], "succeeded"],
        ["1", "run-migrations", "database", "local", listing[3].split()[4], "succeeded"],
    ]
    assert listing[-1] == "2 of 2 job(s)"

    assert cli.main(["status", "--job", "1"]) == 0
    detail = capsys.readouterr().out
    steps = [line.split()[4:6] for line in detail.splitlines()[3:]]
    assert steps[-2:] == [["upgrade", "started"], ["upgrade", "succeeded"]]
    assert cli.main(["status", "--job", "2"]) == 0
    assert "artifact sql-plan: file://" in capsys.readouterr().out


def test_status_of_an_unknown_job_fails_and_bad_ids_are_usage_errors(
    settings_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["status"]) == 1
    assert "no audit trail yet" in capsys.readouterr().err
    assert cli.main(["run-migrations"]) == 0
    assert cli.main(["status", "--job", "42"]) == 1
    assert "no deployment job 42" in capsys.readouterr().err
    assert cli.main(["status", "--job", "latest"]) == 2
    assert cli.main(["status", "--limit", "0"]) == 2


@pytest.mark.integration
def test_a_canary_secret_appears_nowhere(
    settings_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = settings_env["DATABASE_URL"]
    if TEST_DATABASE == "postgres":  # trust auth ignores the password, so it can be the canary
        url = url.replace("postgres@", f"postgres:{CANARY}@", 1)
    env = {
        **settings_env,
        "DATABASE_URL": url,
        "DEPLOY_API_TOKEN": CANARY,
        "COHERE_API_KEY": CANARY + "-cohere",
        "GITHUB_REF_NAME": f"feature/{CANARY}",
    }
    outputs = []
    for args in (("run-migrations",), ("run-migrations", "--sql"), ("status", "--job", "1")):
        result = subprocess.run(door_command("invoke", *args), env=door_env(env), cwd=ROOT,
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        outputs += [result.stdout, result.stderr]

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    auth = {"Authorization": f"Bearer {CANARY}"}
    with TestClient(create_app()) as client:
        event = client.post("/api/v1/jobs/1/events", headers=auth,
                            json={"message": f"token is {CANARY}", "data": {"k": CANARY}})
        assert event.status_code == 201
        responses = [event.text, client.get("/api/v1/jobs/1").text, client.get("/api/v1/jobs").text]

    logs = [p.read_text() for p in (Path(settings_env["DATA_DIR"]) / "logs").glob("*")]
    assert logs and any('"job_id": 1' in log for log in logs)
    artifacts = [p.read_text() for p in Path(settings_env["DATA_DIR"]).rglob("*.sql")]
    everything = "\n".join(outputs + responses + logs + artifacts + [repr(rows_of(url))])
    assert "feature/***" in everything  # the canary was there to leak, and was masked
    assert CANARY not in everything


@pytest.mark.integration
def test_sigterm_cancels_the_run_records_it_and_releases_the_lock(
    settings_env: dict[str, str], tmp_path: Path
) -> None:
    url = settings_env["DATABASE_URL"]
    assert cli.main(["run-migrations"]) == 0
    release = tmp_path / "never"
    slow = SLOW_REVISION.replace("RELEASE", repr(str(release)))
    env = door_env({**settings_env, "MIGRATIONS_DIR": str(migrations_with(tmp_path, slow))})
    log = tmp_path / "stdout.txt"
    with log.open("w") as stdout:
        run = subprocess.Popen(door_command("script", "run-migrations"), env=env, cwd=ROOT,
                               stdout=stdout, stderr=subprocess.PIPE, text=True)
        # The upgrade is the last step: 3/3 on SQLite (after its backup), 2/2 on PostgreSQL.
        deadline = time.monotonic() + 30
        while not re.search(r"==> \[(\d)/\1\] upgrade", log.read_text()):
            assert time.monotonic() < deadline, "the upgrade step never started"
            time.sleep(0.1)
        time.sleep(0.5)
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=30)
    out = log.read_text()

    assert run.returncode == 1, out + err
    assert "error: cancelled" in err
    jobs = rows_of(url)["deployment_job"]
    assert [row[5] for row in jobs] == ["succeeded", "cancelled"]  # state column
    assert rows_of(url)["alembic_version"] == [("0001",)]
    if TEST_DATABASE == "postgres":
        engine = build_engine(url)
        with engine.connect() as connection:
            held = advisory_lock_holders(connection, "run-migrations")
        engine.dispose()
        assert held == 0
    else:
        lock = Path(settings_env["DATA_DIR"]) / "textbook.db.migrate.lock"
        assert lock.read_text() == ""


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.send_response(200 if self.path == "/ready" else 503)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _configure(url: str, service: str, health_url: str) -> None:
    engine = build_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO deployment_configuration"
                 " (service, environment, target, settings, created_at, updated_at)"
                 " VALUES (:s, 'staging', 'local', :settings, CURRENT_TIMESTAMP,"
                 " CURRENT_TIMESTAMP)"),
            {"s": service, "settings": json.dumps({"health_url": health_url})},
        )
    engine.dispose()


def test_monitor_once_records_each_answer_and_fails_when_a_service_is_down(
    settings_env: dict[str, str], health_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = settings_env["DATABASE_URL"]
    assert cli.main(["run-migrations"]) == 0
    assert cli.main(["monitor", "--once"]) == 1  # nothing configured to check
    _configure(url, "backend", f"{health_server}/ready")
    assert cli.main(["monitor", "--once"]) == 0
    _configure(url, "frontend", f"{health_server}/broken")
    assert cli.main(["monitor", "--once", "--timeout", "2"]) == 1
    captured = capsys.readouterr()
    assert "down: frontend/staging" in captured.err
    events = rows_of(url)["deployment_event"]
    notes = [row for row in events if row[6] == "info" and row[5] == "check"]
    messages = sorted(str(row[7]) for row in notes)
    assert messages == [
        "backend/staging is up: HTTP 200",
        "backend/staging is up: HTTP 200",
        "frontend/staging is down: HTTP 503",
    ]
