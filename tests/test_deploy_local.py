"""The local deploy target end to end: real release processes on loopback, real databases."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from conftest import ROOT, door_command, door_env
from pipeline.local import free_port
from pipeline import cli
from pipeline.local import server
from pipeline.local.loadgen import Load
from pipeline.local.releases import Layout, current, releases
from pipeline.locks import file_lock
from pipeline.targets import REGISTRY
from textbook_api.config import get_settings
from textbook_api.db import build_engine

# Under pytest-xdist one worker runs this module: its stack is deployed once.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("local-stack")]

BROKEN_READY = '''
@router.get("/ready", response_model=Ready, responses={503: {"description": "not ready"}})
def ready() -> Ready:
    raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "this release is broken on purpose")
'''


class Stack:
    """A deployed stack. Operations under load run through the shell door, in a process of
    their own, as a maintainer would run them; the rest run in-process (measured coverage)."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.env, self.port = env, port
        self.url = f"http://127.0.0.1:{port}"
        self.layout = Layout.of(Path(env["DATA_DIR"]), "local")

    def run(self, operation: str, *args: str) -> int:
        return cli.main([operation, "--port", str(self.port), *args])

    def door(self, operation: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            door_command("script", operation, "--port", str(self.port), *args),
            env=door_env(self.env), cwd=ROOT, capture_output=True, text=True, check=False,
        )

    def serving(self) -> str | None:
        running = server.running(self.layout)
        return running.release if running else None

    def jobs(self) -> list[tuple[int, str, str]]:
        engine = build_engine(get_settings().sqlalchemy_url)
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT id, operation, state FROM deployment_job ORDER BY id")
            ).all()
        engine.dispose()
        return [(row.id, row.operation, row.state) for row in rows]

    def events(self, job_id: int) -> list[tuple[str, str, str]]:
        engine = build_engine(get_settings().sqlalchemy_url)
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT step, status, message FROM deployment_event WHERE job_id = :j"
                     " ORDER BY sequence"), {"j": job_id},
            ).all()
        engine.dispose()
        return [(row.step, row.status, row.message) for row in rows]


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> Iterator[Stack]:
    """One deployed local stack per module (the first deploy installs a release environment)."""
    data = tmp_path_factory.mktemp("stack")
    database_url = module_database_url
    site = data / "site-src"
    (site / "build" / "docs" / "intro").mkdir(parents=True)
    (site / "build" / "index.html").write_text("<h1>Physical AI textbook v1</h1>")
    (site / "build" / "docs" / "intro" / "index.html").write_text("<h1>Intro</h1>")
    env = {"DATA_DIR": str(data), "DATABASE_URL": database_url, "FRONTEND_DIR": str(site)}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        get_settings.cache_clear()
        deployed = Stack(env, free_port())
        assert deployed.run("deploy-backend") == 0
        try:
            yield deployed
        finally:
            cli.main(["down"])
            get_settings.cache_clear()


def assert_switch_lost_nothing(load: Load) -> None:
    """Not one request of more than a thousand may fail while releases switch."""
    assert load.tally.ok > 1000
    assert load.tally.failed == 0, load.tally.errors[:5]


def test_a_deploy_serves_the_api_and_is_recorded(stack: Stack) -> None:
    ready = httpx.get(f"{stack.url}/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    live = current(stack.layout, "backend")
    assert live is not None and live.state == "live" and stack.serving() == live.id
    job_id, operation, state = stack.jobs()[-1]
    assert (operation, state) == ("deploy-backend", "succeeded")
    steps = [step for step, status, _ in stack.events(job_id) if status == "succeeded"]
    assert steps == ["lock", "build", "prepare", "run-migrations:lock", *(
        ["run-migrations:backup"] if "sqlite" in stack.env["DATABASE_URL"] else []
    ), "run-migrations:upgrade", "start", "gate", "switch", "drain", "prune", "register"]
    api_jobs = httpx.get(f"{stack.url}/api/v1/jobs", params={"service": "backend"}).json()
    assert api_jobs["items"][0]["id"] == job_id


def test_a_redeploy_under_load_fails_no_request(stack: Stack) -> None:
    before = stack.serving()
    with Load(f"{stack.url}/health", clients=20) as load:
        time.sleep(0.5)
        result = stack.door("deploy-backend")
        time.sleep(0.5)
    assert result.returncode == 0, result.stderr
    assert_switch_lost_nothing(load)
    assert load.tally.ok > 100
    assert stack.serving() not in (None, before)
    reused = current(stack.layout, "backend")
    assert reused is not None and reused.meta["requirements_sha256"]


def test_a_release_that_fails_its_gate_is_stopped_and_the_old_one_keeps_serving(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("BACKEND_DIR", str(broken_backend(tmp_path)))
    get_settings.cache_clear()
    serving = stack.serving()

    with Load(f"{stack.url}/health", clients=10) as load:
        code = stack.run(
            "deploy-backend", "--health-attempts", "4", "--health-interval-ms", "100"
        )
    get_settings.cache_clear()

    assert code == 1
    assert "failed its health gate" in capsys.readouterr().err
    assert load.tally.failed == 0 and load.tally.ok > 0
    assert stack.serving() == serving
    newest = releases(stack.layout, "backend")[-1]
    assert newest.state == "failed" and newest.id != serving
    state = json.loads((newest.path / "state.json").read_text())
    assert not server.alive(int(state["pid"]))
    job_id, _, job_state = stack.jobs()[-1]
    assert job_state == "failed"
    assert any("broken on purpose" in message for _, _, message in stack.events(job_id))


def test_rollback_returns_to_the_previous_release_and_marks_the_replaced_job(
    stack: Stack,
) -> None:
    replaced = current(stack.layout, "backend")
    assert replaced is not None
    with Load(f"{stack.url}/health", clients=20) as load:
        result = stack.door("rollback")
    assert result.returncode == 0, result.stderr
    assert_switch_lost_nothing(load)
    now = current(stack.layout, "backend")
    assert now is not None and now.id != replaced.id and stack.serving() == now.id
    assert now.meta["live_since"] > replaced.meta["live_since"]
    states = {job_id: state for job_id, _, state in stack.jobs()}
    assert states[int(replaced.meta["job_id"])] == "rolled_back"
    assert stack.run("rollback", "--to", "no-such-release") == 2


def test_frontend_deploy_rollback_and_rollback_of_both(stack: Stack) -> None:
    build = Path(stack.env["FRONTEND_DIR"]) / "build" / "index.html"
    assert stack.run("deploy-frontend", "--prebuilt") == 0
    assert "v1" in httpx.get(f"{stack.url}/").text
    build.write_text("<h1>Physical AI textbook v2</h1>")
    assert stack.run("deploy-frontend", "--prebuilt") == 0
    assert "v2" in httpx.get(f"{stack.url}/").text
    assert stack.run("rollback", "--service", "frontend") == 0
    assert "v1" in httpx.get(f"{stack.url}/").text
    assert stack.run("deploy-frontend", "--prebuilt") == 0
    backend_before = stack.serving()
    assert stack.run("rollback", "--service", "all") == 0
    assert "v1" in httpx.get(f"{stack.url}/").text
    assert stack.serving() != backend_before
    assert stack.jobs()[-1][1:] == ("rollback", "succeeded")


def test_a_concurrent_deploy_exits_3_naming_the_holder(stack: Stack) -> None:
    with file_lock(stack.layout.lock("backend"), "deploy backend", 0):
        result = stack.door("deploy-backend", "--lock-timeout", "0")
    assert result.returncode == 3
    assert f"textbook-pipeline deploy backend pid={os.getpid()}" in result.stderr


def broken_backend(tmp_path: Path) -> Path:
    """A copy of the backend whose /ready always answers 503."""
    broken = tmp_path / "backend"
    shutil.copytree(ROOT / "backend", broken, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    health = broken / "textbook_api" / "api" / "health.py"
    source = health.read_text()
    health.write_text(source[:source.index('@router.get("/ready"')] + BROKEN_READY)
    return broken


def kill_a_deploy_in_its_gate(stack: Stack, tmp_path: Path) -> tuple[int, int]:
    """SIGKILL a deploy (shell door) while its new release waits on the health gate.

    Returns the killed run's job id (from its lock record) and its release's pid.
    """
    log = tmp_path / "deploy.log"
    env = {**stack.env, "BACKEND_DIR": str(broken_backend(tmp_path))}
    with log.open("w") as output:
        victim = subprocess.Popen(
            door_command("script", "deploy-backend", "--port", str(stack.port),
                         "--health-attempts", "100000", "--health-interval-ms", "100"),
            env=door_env(env), cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while "] gate:" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    assert "] gate:" in log.read_text(), log.read_text()
    newest = releases(stack.layout, "backend")[-1]
    pid = int(json.loads((newest.path / "state.json").read_text())["pid"])
    assert server.alive(pid)  # the release it started outlived it: an orphan
    record = json.loads(stack.layout.lock("backend").read_text())
    return int(record["job_id"]), pid


def test_a_deploy_killed_midway_is_closed_and_its_orphan_stopped_by_the_next_one(
    stack: Stack, tmp_path: Path,
) -> None:
    serving = stack.serving()
    killed_job, orphan = kill_a_deploy_in_its_gate(stack, tmp_path)
    assert stack.serving() == serving
    assert dict((job, state) for job, _, state in stack.jobs())[killed_job] == "in_progress"

    result = stack.door("deploy-backend")
    assert result.returncode == 0, result.stderr
    assert "recovered the stale backend lock" in result.stdout
    assert "stopped orphaned release" in result.stdout and not server.alive(orphan)
    recovering_job = stack.jobs()[-1][0]
    assert dict((job, state) for job, _, state in stack.jobs())[killed_job] == "failed"
    assert any(f"recovered by job {recovering_job}" in message
               for _, _, message in stack.events(killed_job))
    now = current(stack.layout, "backend")
    assert now is not None and stack.serving() == now.id and now.state == "live"
    assert httpx.get(f"{stack.url}/ready").status_code == 200


def test_a_port_taken_by_a_foreign_process_exits_2_naming_it(
    stack: Stack, capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        code = cli.main(["deploy-backend", "--port", str(port), "--environment", "squat"])
    assert code == 2
    assert f"port {port} on 127.0.0.1 is taken by pid {os.getpid()}" in capsys.readouterr().err


def test_a_prebuilt_deploy_takes_the_site_from_frontend_build_dir(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    elsewhere = tmp_path / "site"
    (elsewhere / "docs").mkdir(parents=True)
    (elsewhere / "index.html").write_text("<h1>Physical AI textbook, built elsewhere</h1>")
    monkeypatch.setenv("FRONTEND_BUILD_DIR", str(elsewhere))
    get_settings.cache_clear()
    try:
        assert stack.run("deploy-frontend", "--prebuilt") == 0
    finally:
        monkeypatch.delenv("FRONTEND_BUILD_DIR")
        get_settings.cache_clear()
    assert "built elsewhere" in httpx.get(f"{stack.url}/").text


def test_an_unknown_target_exits_2(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    assert stack.run("deploy-backend", "--target", "mars") == 2
    known = ", ".join(sorted(REGISTRY))
    assert "local" in REGISTRY
    assert f"unknown target 'mars' (known: {known})" in capsys.readouterr().err


def test_down_stops_a_release_orphaned_by_a_killed_deploy(stack: Stack, tmp_path: Path) -> None:
    """Last in the module: it stops the stack."""
    _, orphan = kill_a_deploy_in_its_gate(stack, tmp_path)
    serving = server.running(stack.layout)
    assert serving is not None
    assert cli.main(["down"]) == 0
    assert not server.alive(orphan) and not server.alive(serving.pid)
