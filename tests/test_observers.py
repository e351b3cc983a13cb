"""Run observers through real operations: Slack and the GitHub API stand in on 127.0.0.1.

The runs are real (run-migrations on this test's database, deploy-frontend and rollback of the
local target); only the two remote services are fakes, started here as HTTP servers.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from conftest import ROOT, Reply, Request, door_command, door_env, stand_in
from pipeline.local import free_port
from pipeline import cli
from pipeline.observers.base import Delivery, NotDelivered, Transient, failure_for, retry_after
from textbook_api.db import build_engine

CANARY = "canary-5e3b9d0c71f4"
GIT_SHA = "0123456789abcdef0123456789abcdef01234567"  # pragma: allowlist secret
REPOSITORY = "textbook/monorepo"
GITHUB_TOKEN = f"ghs-{CANARY}"


@dataclass
class Fake:
    """A remote service: each request takes its (status, headers) from `script` while it
    lasts (then answers normally through `answer`), and every request is kept with its time."""

    answer: Callable[[Request], Reply]
    url: str = ""
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def respond(self, request: Request) -> Reply:
        self.requests.append(request)
        self.times.append(time.monotonic())
        if self.script:
            status, headers = self.script.pop(0)
            return status, headers, {"message": "scripted failure"}
        return self.answer(request)


def serve(fake: Fake) -> Iterator[Fake]:
    with stand_in(fake.respond) as url:
        fake.url = url
        yield fake


@pytest.fixture
def slack() -> Iterator[Fake]:
    yield from serve(Fake(lambda request: (200, {}, "ok")))


class GitHubDeployments:
    """The deployments part of the GitHub API, kept in memory (newest first, as GitHub lists)."""

    def __init__(self) -> None:
        self.deployments: list[dict[str, Any]] = []
        self.statuses: dict[int, list[dict[str, Any]]] = {}

    def __call__(self, request: Request) -> Reply:
        parts = request.path.strip("/").split("/")
        if parts[:3] != ["repos", *REPOSITORY.split("/")] or parts[3] != "deployments":
            return 404, {}, {"message": "Not Found"}
        if len(parts) == 4 and request.method == "POST":
            deployment = {"id": len(self.deployments) + 1, **request.body}
            self.deployments.insert(0, deployment)
            self.statuses[deployment["id"]] = []
            return 201, {}, deployment
        if len(parts) == 4:
            wanted = {key: values[0] for key, values in request.query.items()
                      if key in ("environment", "task")}
            found = [d for d in self.deployments
                     if all(d.get(key) == value for key, value in wanted.items())]
            return 200, {}, found[: int(request.query.get("per_page", ["30"])[0])]
        statuses = self.statuses[int(parts[4])]
        if request.method == "POST":
            status = {"id": sum(map(len, self.statuses.values())) + 1, **request.body}
            statuses.insert(0, status)
            return 201, {}, status
        return 200, {}, statuses[: int(request.query.get("per_page", ["30"])[0])]

    def history(self) -> list[tuple[int, str]]:
        """Every status posted, in the order it was posted: (deployment, state)."""
        posted = [(status["id"], deployment, status["state"])
                  for deployment, statuses in self.statuses.items() for status in statuses]
        return [(deployment, state) for _, deployment, state in sorted(posted)]


@pytest.fixture
def github() -> Iterator[Fake]:
    yield from serve(Fake(GitHubDeployments()))


def api(fake: Fake) -> GitHubDeployments:
    assert isinstance(fake.answer, GitHubDeployments)
    return fake.answer


@pytest.fixture
def run_env(
    settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, str]:
    """A run as GitHub Actions would make it, with quick retries and a built site to deploy."""
    site = tmp_path / f"frontend-{CANARY}"
    (site / "build").mkdir(parents=True)
    (site / "build" / "index.html").write_text("<h1>Physical AI textbook v1</h1>")
    env = {
        "GITHUB_SHA": GIT_SHA,
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_SERVER_URL": "http://127.0.0.1:9",
        "GITHUB_RUN_ID": "4242",
        "NOTIFY_RETRY_DELAY": "0.01",
        "NOTIFY_TIMEOUT": "5",
        "DEPLOY_API_TOKEN": CANARY,
        "FRONTEND_DIR": str(site),
        "LOCAL_PORT": str(free_port()),
    }
    for name in ("SLACK_WEBHOOK_URL", "GITHUB_TOKEN", "GITHUB_API_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return {**settings_env, **env}


@pytest.fixture
def migrated_env(run_env: dict[str, str]) -> dict[str, str]:
    """run_env with the audit tables in place (job 1), so that deploys are recorded."""
    assert cli.main(["run-migrations"]) == 0
    return run_env


def use_slack(monkeypatch: pytest.MonkeyPatch, url: str) -> str:
    webhook = f"{url}/services/T0001/B0001/{CANARY}-slack"
    monkeypatch.setenv("SLACK_WEBHOOK_URL", webhook)
    return webhook


def use_github(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", GITHUB_TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", url)


def events_of(database_url: str, job_id: int) -> list[str]:
    engine = build_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT message FROM deployment_event WHERE job_id = :job ORDER BY sequence"),
            {"job": job_id},
        )
        messages = [str(row[0]) for row in rows]
    engine.dispose()
    return messages


def slack_fields(request: Request) -> dict[str, str]:
    details = request.body["blocks"][1]["text"]["text"]
    return dict(line.removeprefix("*").split("*: ", 1) for line in details.splitlines())


def test_the_plan_names_the_observers_that_are_on(
    run_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    def header(*args: str) -> str:
        assert cli.main([*args, "--dry-run"]) == 0
        return capsys.readouterr().out.splitlines()[0]

    assert header("deploy-frontend", "--prebuilt").endswith(", notify none)")
    use_slack(monkeypatch, "http://127.0.0.1:9")
    assert header("deploy-frontend", "--prebuilt").endswith(", notify slack)")
    use_github(monkeypatch, "http://127.0.0.1:9")
    assert header("deploy-frontend", "--prebuilt").endswith(", notify slack, github)")
    # GitHub records deployments: a migration is not one.
    assert header("run-migrations").endswith(", notify slack)")


def test_slack_gets_one_message_when_a_recorded_run_ends(
    run_env: dict[str, str], slack: Fake, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_slack(monkeypatch, slack.url)
    dialect = make_url(run_env["DATABASE_URL"]).get_backend_name()
    assert cli.main(["run-migrations"]) == 0
    assert "warning" not in capsys.readouterr().out

    assert len(slack.requests) == 1
    request = slack.requests[0]
    assert request.method == "POST"
    assert request.path == f"/services/T0001/B0001/{CANARY}-slack"
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.body["text"].endswith(f"run-migrations succeeded: database on local ({dialect})")
    fields = slack_fields(request)
    duration = fields.pop("duration")
    assert duration.endswith("s") and float(duration[:-1]) >= 0
    assert fields == {
        "job": "1",
        "operation": "run-migrations",
        "service": "database",
        "environment": "local",
        "target": dialect,
        "git sha": GIT_SHA,
        "log": f"http://127.0.0.1:9/{REPOSITORY}/actions/runs/4242",
    }


@pytest.mark.parametrize(
    ("script", "calls"),
    [([(503, {})], 2), ([(500, {}), (502, {})], 3), ([(429, {"Retry-After": "0"})], 2)],
)
def test_slack_is_retried_on_5xx_and_429(
    run_env: dict[str, str], slack: Fake, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], script: list[tuple[int, dict[str, str]]], calls: int,
) -> None:
    use_slack(monkeypatch, slack.url)
    slack.script = list(script)
    assert cli.main(["run-migrations"]) == 0
    assert len(slack.requests) == calls
    assert slack.requests[0].body == slack.requests[-1].body
    assert "warning" not in capsys.readouterr().out


def test_slack_waits_as_long_as_retry_after_says(
    run_env: dict[str, str], slack: Fake, monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_slack(monkeypatch, slack.url)
    slack.script = [(429, {"Retry-After": "1"})]
    assert cli.main(["run-migrations"]) == 0
    assert len(slack.requests) == 2
    assert slack.times[1] - slack.times[0] >= 1.0  # a lower bound: only honouring it meets it


def test_a_refused_notification_is_not_retried_and_is_recorded(
    run_env: dict[str, str], slack: Fake, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_slack(monkeypatch, slack.url)
    slack.script = [(401, {}), (200, {})]
    assert cli.main(["run-migrations"]) == 0
    assert len(slack.requests) == 1
    out = capsys.readouterr().out
    assert "warning: slack notification failed: HTTP 401" in out
    assert "(not retried)" in out
    assert any("slack notification failed: HTTP 401" in event
               for event in events_of(run_env["DATABASE_URL"], 1))


@pytest.mark.parametrize("down", ["refusing", "failing"])
def test_a_run_succeeds_and_is_recorded_when_slack_is_down(
    run_env: dict[str, str], slack: Fake, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], down: str,
) -> None:
    if down == "refusing":
        use_slack(monkeypatch, f"http://127.0.0.1:{free_port()}")
    else:
        use_slack(monkeypatch, slack.url)
        slack.script = [(503, {})] * 10
    assert cli.main(["run-migrations"]) == 0
    out = capsys.readouterr().out
    assert "run-migrations: recorded as job 1" in out
    assert "run-migrations: done" in out
    warning = next(line for line in out.splitlines() if line.startswith("warning: slack"))
    assert warning.endswith("(gave up after 3 attempts)")
    assert CANARY not in out
    assert len(slack.requests) == (0 if down == "refusing" else 3)
    assert cli.main(["status", "--job", "1"]) == 0
    detail = capsys.readouterr().out
    assert "succeeded" in detail.splitlines()[0]
    assert "slack notification failed" in detail


def test_a_deploy_is_a_github_deployment_with_its_statuses(
    migrated_env: dict[str, str], github: Fake, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_github(monkeypatch, github.url)
    assert cli.main(["deploy-frontend", "--prebuilt", "--environment", "staging"]) == 0
    assert "warning" not in capsys.readouterr().out

    assert [(r.method, r.path) for r in github.requests] == [
        ("GET", f"/repos/{REPOSITORY}/deployments"),
        ("POST", f"/repos/{REPOSITORY}/deployments"),
        ("POST", f"/repos/{REPOSITORY}/deployments/1/statuses"),
        ("POST", f"/repos/{REPOSITORY}/deployments/1/statuses"),
    ]
    for request in github.requests:
        assert request.headers["Authorization"].split()[-1] == GITHUB_TOKEN
        assert "application/vnd.github" in request.headers["Accept"]
    assert github.requests[0].query["environment"] == ["staging"]
    created = github.requests[1].body
    assert {key: created[key] for key in
            ("ref", "environment", "task", "auto_merge", "required_contexts")} == {
        "ref": GIT_SHA, "environment": "staging", "task": "deploy:frontend",
        "auto_merge": False, "required_contexts": [],
    }
    in_progress, success = (request.body for request in github.requests[2:])
    assert in_progress["state"] == "in_progress" and success["state"] == "success"
    for status in (in_progress, success):
        assert status["environment_url"] == f"http://127.0.0.1:{migrated_env['LOCAL_PORT']}/"
        assert status["log_url"] == f"http://127.0.0.1:9/{REPOSITORY}/actions/runs/4242"


def test_a_failed_deploy_reaches_github_and_slack_with_its_step_and_masked_error(
    migrated_env: dict[str, str], github: Fake, slack: Fake, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_github(monkeypatch, github.url)
    webhook = use_slack(monkeypatch, slack.url)
    (Path(migrated_env["FRONTEND_DIR"]) / "build" / "index.html").unlink()
    assert cli.main(["deploy-frontend", "--prebuilt"]) == 1
    capsys.readouterr()

    assert api(github).history() == [(1, "in_progress"), (1, "failure")]
    assert github.requests[-1].body["description"].startswith("deploy-frontend failed: copy: ")
    fields = slack_fields(slack.requests[0])
    assert slack.requests[0].body["text"].startswith(":x: deploy-frontend failed")
    assert fields["failed step"] == "copy"
    assert "holds no built site" in fields["error"]
    assert "frontend-***" in fields["error"]  # the site's folder carries the canary: masked
    assert fields["job"] == "2"
    sent = json.dumps([request.body for request in slack.requests + github.requests])
    assert CANARY not in sent
    assert webhook not in sent


def test_rollback_marks_the_replaced_deployment_inactive(
    migrated_env: dict[str, str], github: Fake, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_github(monkeypatch, github.url)
    build = Path(migrated_env["FRONTEND_DIR"]) / "build" / "index.html"
    assert cli.main(["deploy-frontend", "--prebuilt"]) == 0
    build.write_text("<h1>Physical AI textbook v2</h1>")
    assert cli.main(["deploy-frontend", "--prebuilt"]) == 0
    assert cli.main(["rollback", "--service", "frontend"]) == 0
    assert "warning" not in capsys.readouterr().out

    assert api(github).history() == [
        (1, "in_progress"), (1, "success"),
        (2, "in_progress"), (2, "success"), (1, "inactive"),
        (3, "in_progress"), (3, "success"), (2, "inactive"),
    ]
    assert api(github).deployments[0]["payload"]["operation"] == "rollback"


def test_github_is_retried_on_5xx_but_a_refusal_only_warns(
    migrated_env: dict[str, str], github: Fake, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_github(monkeypatch, github.url)
    github.script = [(502, {}), (429, {"Retry-After": "0"})]
    assert cli.main(["deploy-frontend", "--prebuilt"]) == 0
    assert api(github).history() == [(1, "in_progress"), (1, "success")]
    assert "warning" not in capsys.readouterr().out

    github.requests.clear()
    github.script = [(401, {})]
    assert cli.main(["deploy-frontend", "--prebuilt"]) == 0
    out = capsys.readouterr().out
    assert "warning: github notification failed: HTTP 401" in out
    assert len(github.requests) == 1  # not retried, and nothing more attempted for this run
    assert api(github).history() == [(1, "in_progress"), (1, "success")]
    assert CANARY not in out


def answered_at_a_terminal(run_env: dict[str, str], answer: str) -> tuple[int, str]:
    """deploy-frontend to production through the shell door, from a terminal, `answer` typed
    at its prompt."""
    command = door_command("script", "deploy-frontend", "--prebuilt", "--environment",
                           "production")
    controller, terminal = pty.openpty()
    with subprocess.Popen(command, env=door_env(run_env), cwd=ROOT, stdin=terminal,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as process:
        os.close(terminal)
        os.write(controller, answer.encode() + b"\n")
        out, _ = process.communicate(timeout=120)
    os.close(controller)
    return process.returncode, out


def releases(run_env: dict[str, str]) -> list[Path]:
    folder = Path(run_env["DATA_DIR"]) / "deploy" / "production" / "frontend" / "releases"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_production_needs_yes_without_a_terminal(
    migrated_env: dict[str, str], capsys: pytest.CaptureFixture[str],
) -> None:
    production = ["deploy-frontend", "--prebuilt", "--environment", "production"]
    assert cli.main(production) == 2  # pytest's stdin is no terminal
    assert ("deploy-frontend on production needs --yes when not run from a terminal"
            in capsys.readouterr().err)
    assert releases(migrated_env) == []
    assert cli.main([*production, "--dry-run"]) == 0
    assert cli.main([*production, "--yes"]) == 0
    assert len(releases(migrated_env)) == 1


@pytest.mark.integration
def test_production_asks_at_a_terminal(migrated_env: dict[str, str]) -> None:
    code, out = answered_at_a_terminal(migrated_env, "n")
    assert code == 2
    assert "Continue? [y/N]" in out and "production not confirmed: nothing was changed" in out
    assert releases(migrated_env) == []
    code, out = answered_at_a_terminal(migrated_env, "y")
    assert code == 0, out
    assert len(releases(migrated_env)) == 1


def test_delivery_backs_off_doubling_and_caps_every_wait() -> None:
    waits: list[float] = []
    delivery = Delivery(timeout=1, attempts=4, retry_delay=0.5, max_retry_delay=10,
                        sleep=waits.append)
    answers: list[Exception | str] = [Transient("503"), Transient("502"),
                                      Transient("429", retry_after=3600), "delivered"]

    def request() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert delivery.send(request) == "delivered"
    assert waits == [0.5, 1.0, 10]


def test_delivery_gives_up_after_its_attempts_and_never_retries_a_refusal() -> None:
    waits: list[float] = []
    delivery = Delivery(timeout=1, attempts=2, retry_delay=0.1, max_retry_delay=1,
                        sleep=waits.append)
    calls: list[str] = []

    def failing(error: NotDelivered) -> Callable[[], None]:
        def request() -> None:
            calls.append(str(error))
            raise error
        return request

    with pytest.raises(NotDelivered, match=r"^HTTP 500 \(gave up after 2 attempts\)$"):
        delivery.send(failing(failure_for(500, "", None)))
    assert len(calls) == 2
    calls.clear()
    with pytest.raises(NotDelivered, match="HTTP 403 Forbidden"):
        delivery.send(failing(failure_for(403, "Forbidden", "5")))
    assert len(calls) == 1 and waits == [0.1]


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("7") == 7.0
    assert retry_after(None) is None and retry_after("soon") is None
    later = retry_after(formatdate(time.time() + 120, usegmt=True))
    assert later is not None and 100 < later <= 120
