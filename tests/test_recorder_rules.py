"""The recorder's rules pinned exactly, in-process on the real database of the run.

The end-to-end tests in test_recording.py prove that runs are recorded; these state what a small
change to `pipeline/recording.py` would break unnoticed there: when a record is written (live or
at the end), the exact fields of each event, the origin's precedence, what happens to a job that
died, and the single warning of a run that cannot be recorded.
"""

from __future__ import annotations

import getpass
import logging
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy.orm import Session

from conftest import ROOT
from pipeline.recording import Origin, Recorder, _git
from textbook_api.config import PACKAGE_DIR
from textbook_api.db import build_engine
from textbook_api.migrate import alembic_config
from textbook_api.models import DeploymentJob
from textbook_api.models.base import utcnow
from textbook_api.redaction import Redactor
from textbook_api.services.deployments import DeploymentService

SECRET = "hunter2-recorder-secret"  # pragma: allowlist secret (a canary)
ORIGIN = Origin(git_sha="a" * 40, git_ref=f"feature/{SECRET}", actor="ada", trigger="push")


def migrate(url: str) -> None:
    command.upgrade(alembic_config(url, PACKAGE_DIR / "migrations"), "head")


@pytest.fixture
def url(database_url: str) -> str:
    migrate(database_url)
    return database_url


class Warnings(list[str]):
    def __call__(self, message: str) -> None:
        self.append(message)


_made: list[Recorder] = []


@pytest.fixture(autouse=True)
def _close_recorders() -> Iterator[None]:
    """Recorders standing in for runs that died are never finished: close them all here."""
    yield
    while _made:
        _made.pop().close()


def recorder(url: str, warnings: Warnings, *, live: bool = True,
             operation: str = "deploy-backend") -> Recorder:
    made = Recorder(url, operation=operation, service="backend", environment="staging",
                    target="local", redact=Redactor([SECRET]), live=live, warn=warnings,
                    origin=ORIGIN)
    _made.append(made)
    return made


Reader = Callable[[int | None], DeploymentJob]


@pytest.fixture
def read(database_url: str) -> Iterator[Reader]:
    """`read(job_id)`: the stored job with its events and artifacts, from a fresh session."""
    engine = build_engine(database_url)

    def job(job_id: int | None) -> DeploymentJob:
        assert job_id is not None
        with Session(engine) as session:
            return DeploymentService(session, Redactor([])).job(job_id)

    yield job
    engine.dispose()


def count_jobs(url: str) -> int:
    engine = build_engine(url)
    with Session(engine) as session:
        total = int(session.query(DeploymentJob).count())
    engine.dispose()
    return total


def test_a_live_run_writes_each_report_at_once_with_its_exact_fields(
    url: str, read: Reader
) -> None:
    warnings = Warnings()
    rec = recorder(url, warnings)
    rec.started()
    job = read(rec.job_id)
    assert job.state == "in_progress" and job.started_at is not None and job.finished_at is None
    assert (job.operation, job.service, job.environment, job.target) == \
        ("deploy-backend", "backend", "staging", "local")
    assert (job.git_sha, job.git_ref, job.actor, job.trigger) == \
        ("a" * 40, "feature/***", "ada", "push")

    rec.step_started("build", "uv build")
    assert [(e.step, e.status, e.level, e.message) for e in read(rec.job_id).events] == \
        [("build", "started", "info", "uv build")]
    rec.step_finished("build", 1.2345)
    rec.step_finished("gate", 0.25, error=f"503 from {SECRET}")
    rec.note("disk is low", step="prune", free_mb=12)
    rec.note("plain note")
    rec.artifact("wheel", f"file:///{SECRET}/w.whl", "f" * 64, 2048)
    events = [(e.sequence, e.step, e.status, e.level, e.message, e.duration_ms, e.data)
              for e in read(rec.job_id).events]
    assert events == [
        (1, "build", "started", "info", "uv build", None, {}),
        (2, "build", "succeeded", "info", "build succeeded", 1234, {}),
        (3, "gate", "failed", "error", "503 from ***", 250, {}),
        (4, "prune", "info", "info", "disk is low", None, {"free_mb": 12}),
        (5, None, "info", "info", "plain note", None, {}),
    ]
    artifacts = [(a.kind, a.uri, a.sha256, a.size_bytes) for a in read(rec.job_id).artifacts]
    assert artifacts == [("wheel", "file:///***/w.whl", "f" * 64, 2048)]

    rec.finished("failed", f"gate refused by {SECRET}")
    job = read(rec.job_id)
    assert (job.state, job.error) == ("failed", "gate refused by ***")
    assert job.finished_at is not None and job.finished_at >= job.started_at
    assert count_jobs(url) == 1 and warnings == []


def test_a_run_that_is_not_live_writes_everything_at_its_end_with_the_times_it_happened(
    url: str, read: Reader
) -> None:
    warnings = Warnings()
    rec = recorder(url, warnings, live=False)
    rec.started()
    rec.step_started("upgrade", "alembic upgrade head")
    happened = utcnow()
    time.sleep(0.05)
    rec.step_finished("upgrade", 0.001)
    assert rec.job_id is None and count_jobs(url) == 0  # nothing written before the end
    time.sleep(0.05)
    flushed = utcnow()
    rec.finished("succeeded")
    job = read(rec.job_id)
    assert job.state == "succeeded" and job.error is None
    assert [(e.status, e.duration_ms) for e in job.events] == \
        [("started", None), ("succeeded", 1)]
    # each report keeps the time it was made, not the time it was written
    assert job.started_at is not None and job.started_at <= happened
    assert job.events[0].created_at <= happened < job.events[1].created_at < flushed
    assert job.finished_at is not None and job.finished_at >= flushed

    # after the end, what still arrives (an observer's warning) is written at once
    rec.note("slack is down", step="notify")
    assert [e.message for e in read(rec.job_id).events][-1] == "slack is down"
    assert warnings == []


def test_the_run_is_logged_with_its_job_and_step(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    rec = recorder(url, Warnings(), operation="rollback")
    with caplog.at_level(logging.INFO, logger="pipeline"):
        rec.started()
        rec.step_finished("switch", 0.5)
        rec.step_finished("drain", 0.5, error="drain timed out")
        rec.finished("succeeded")
        rec.finished("failed", "boom")  # the stored job refuses it; the log still says it
    fields = ("step", "job_id", "operation", "service")
    records = [(r.levelno, r.getMessage(), *(getattr(r, name, "-") for name in fields))
               for r in caplog.records if r.name == "pipeline"]
    assert records == [
        (logging.INFO, "switch succeeded", "switch", rec.job_id, "rollback", "backend"),
        (logging.ERROR, "drain timed out", "drain", rec.job_id, "rollback", "backend"),
        (logging.INFO, "rollback succeeded", "-", rec.job_id, "rollback", "backend"),
        (logging.ERROR, "rollback failed: boom", "-", rec.job_id, "rollback", "backend"),
    ]


def test_a_rollback_marks_only_a_succeeded_job_rolled_back(url: str, read: Reader) -> None:
    done, broken = recorder(url, Warnings()), recorder(url, Warnings())
    for rec, state in ((done, "succeeded"), (broken, "failed")):
        rec.started()
        rec.finished(state)
    rollback = recorder(url, Warnings(), operation="rollback")
    rollback.started()
    rollback.mark_rolled_back(done.job_id or 0)
    rollback.mark_rolled_back(broken.job_id or 0)
    assert read(done.job_id).state == "rolled_back"
    assert read(broken.job_id).state == "failed"
    assert read(rollback.job_id).state == "in_progress"


def test_a_job_that_died_is_closed_by_the_next_run_and_a_finished_one_is_left_alone(
    url: str, read: Reader
) -> None:
    died_running, died_queued, finished = (recorder(url, Warnings()) for _ in range(3))
    died_running.started()
    died_queued.note("queued and killed before it started")
    finished.started()
    finished.finished("succeeded")

    next_run = recorder(url, Warnings())
    next_run.started()
    for rec in (died_running, died_queued, finished):
        next_run.close_abandoned(rec.job_id or 0, "killed (stale lock)")

    message = f"abandoned: killed (stale lock) by job {next_run.job_id}"
    running = read(died_running.job_id)
    assert (running.state, running.error) == ("failed", message)
    assert [(e.level, e.status, e.message) for e in running.events] == \
        [("error", "failed", message)]
    queued = read(died_queued.job_id)
    assert (queued.state, queued.error) == ("cancelled", message)
    assert queued.events[-1].message == message
    kept = read(finished.job_id)
    assert (kept.state, kept.error, kept.events) == ("succeeded", None, [])


def test_reports_made_before_the_audit_tables_exist_are_written_once_they_do(
    database_url: str, read: Reader
) -> None:
    warnings = Warnings()
    rec = recorder(database_url, warnings)
    rec.started()
    rec.step_started("upgrade", "alembic upgrade head")
    assert rec.job_id is None and warnings == []  # not an error yet: the run may create them
    migrate(database_url)
    rec.step_finished("upgrade", 2)
    rec.finished("succeeded")
    job = read(rec.job_id)
    assert job.state == "succeeded"
    assert [(e.step, e.status, e.duration_ms) for e in job.events] == \
        [("upgrade", "started", None), ("upgrade", "succeeded", 2000)]
    assert warnings == []


def test_a_run_without_audit_tables_says_so_once_at_its_end(database_url: str) -> None:
    warnings = Warnings()
    rec = recorder(database_url, warnings)
    rec.started()
    rec.finished("succeeded")
    rec.note("after the end")
    assert warnings == ["this run is not recorded: the audit tables do not exist in this database"]


def test_an_unreachable_database_is_warned_about_once_with_the_first_line_of_its_reason(
    tmp_path: Path,
) -> None:
    warnings = Warnings()
    folder = tmp_path / "a-folder"
    folder.mkdir()
    rec = recorder(f"sqlite:///{folder}", warnings)  # a folder is no database file
    rec.started()
    rec.step_started("build", "uv build")
    rec.finished("succeeded")
    assert warnings == ["this run is not recorded: unable to open database file"]


def test_a_url_no_engine_can_be_built_for_is_warned_about_and_never_raises() -> None:
    warnings = Warnings()
    rec = recorder("nosuch://host/db", warnings)  # no engine, so nothing to dispose either
    rec.started()
    rec.finished("succeeded")
    rec.note("after the end")
    assert warnings == ["this run is not recorded: Can't load plugin: sqlalchemy.dialects:nosuch"]


def test_the_end_time_is_when_the_run_ended_not_when_the_database_took_it(
    url: str, read: Reader
) -> None:
    rec = recorder(url, Warnings())
    rec.started()
    engine = build_engine(url)
    locked, released = threading.Event(), []
    # Lock the jobs out of every reader too: the recorder must wait before it even reads the job.
    lock = ("BEGIN EXCLUSIVE" if engine.dialect.name == "sqlite"
            else "LOCK TABLE deployment_job IN ACCESS EXCLUSIVE MODE")

    def hold_the_jobs() -> None:
        with engine.connect() as connection:
            connection.exec_driver_sql(lock)
            locked.set()
            time.sleep(0.5)
            released.append(utcnow())
            connection.rollback()

    holder = threading.Thread(target=hold_the_jobs)
    holder.start()
    locked.wait(5)
    rec.finished("succeeded")  # waits for the lock
    holder.join()
    engine.dispose()
    finished_at = read(rec.job_id).finished_at
    assert finished_at is not None and finished_at < released[0]


def test_a_job_the_store_disagrees_with_stops_the_recording_with_one_warning(
    url: str, read: Reader
) -> None:
    warnings = Warnings()
    rec = recorder(url, warnings)
    rec.started()
    rec.finished("succeeded")
    rec.finished("failed", "too late")  # succeeded cannot become failed
    rec.note("still arriving")
    assert warnings == [f"this run is not recorded: job {rec.job_id} cannot go from succeeded"
                        " to failed; allowed: rolled_back"]
    job = read(rec.job_id)
    assert (job.state, job.error) == ("succeeded", None)
    # the refused transition was dropped, not retried before each later report
    assert [e.message for e in job.events] == ["still arriving"]


def test_the_origin_prefers_the_ci_environment_then_git_then_the_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("GITHUB_SHA", "GITHUB_REF_NAME", "GITHUB_ACTOR", "GITHUB_EVENT_NAME", "CI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(ROOT)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    branch = subprocess.run(["git", "rev-parse", "--abbrev-ref", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    assert Origin.detect() == Origin(head, branch, getpass.getuser(), "manual")
    monkeypatch.setenv("CI", "true")
    assert Origin.detect().trigger == "ci"
    ci = {"GITHUB_SHA": "b" * 40, "GITHUB_REF_NAME": "main", "GITHUB_ACTOR": "octo",
          "GITHUB_EVENT_NAME": "workflow_dispatch"}
    for name, value in ci.items():
        monkeypatch.setenv(name, value)
    assert Origin.detect() == Origin("b" * 40, "main", "octo", "workflow_dispatch")


def test_git_answers_a_stripped_string_or_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    sha = _git("rev-parse", "HEAD")
    assert sha is not None and re.fullmatch(r"[0-9a-f]{40}", sha)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert _git("rev-parse", "HEAD") is None  # not a repository
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert _git("ls-files") is None  # succeeded with nothing to say
    # no commit yet: git prints "HEAD" and fails; a failure is no answer
    assert _git("rev-parse", "HEAD") is None
    monkeypatch.setenv("PATH", str(tmp_path))  # no git at all
    assert _git("rev-parse", "HEAD") is None


def test_a_git_that_hangs_is_given_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hung = tmp_path / "git"
    hung.write_text("#!/bin/sh\nexec sleep 60\n")
    hung.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    started = time.monotonic()
    assert _git("rev-parse", "HEAD") is None
    assert time.monotonic() - started < 30


def test_close_lets_go_of_the_database_connections(url: str) -> None:
    def open_descriptors() -> int:
        return len(list(Path("/proc/self/fd").iterdir()))

    before = open_descriptors()
    rec = recorder(url, Warnings())
    rec.started()  # live: written at once, through a pooled connection kept open
    assert open_descriptors() > before
    rec.close()
    assert open_descriptors() == before
