"""The local target's releases, switch and drain, pinned in fast tests with real processes.

test_deploy_local.py proves a whole deploy under load; these state what a small change to
`pipeline/local/releases.py` or `pipeline/local/server.py` would break unnoticed there: the
layout's paths, a release's record, which release `current` and the rollback target are, what
prune keeps, and a real release process's start, gate, switch-in and drain, with their failures.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from alembic import command

from conftest import Reply, Request, stand_in
from pipeline.errors import OperationFailed
from pipeline.local import server
from pipeline.local.releases import (
    Layout,
    Release,
    current,
    find,
    new_release,
    previous_served,
    prune,
    releases,
    switch,
)
from pipeline.targets.base import Gate
from textbook_api.config import PACKAGE_DIR
from textbook_api.migrate import alembic_config


def children() -> set[int]:
    """This process's child processes, from /proc."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            found.add(int(stat.parent.name))
    return found


@pytest.fixture(autouse=True)
def no_process_left() -> Iterator[None]:
    """Kill what a test started and left running, whatever stopped it midway: cleanup must not
    rely on the code under test (a mutation run makes every function of it fail)."""
    before = children()
    yield
    for pid in children() - before:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout.of(tmp_path / "data", "staging")


def test_the_layout_of_one_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "data" / "deploy" / "staging"
    layout = Layout.of(Path("data"), "staging")  # a relative data dir is made absolute
    assert layout.root == root
    assert layout.releases("backend") == root / "backend" / "releases"
    assert layout.current_link("frontend") == root / "frontend" / "current"
    assert layout.control == root / "keeper.sock"
    assert layout.server_file == root / "backend" / "server.json"
    assert layout.site_dir == root / "frontend" / "current" / "site"
    assert layout.lock("backend") == root / "locks" / "backend.lock"


@pytest.fixture
def india_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The host's local time is not UTC (UTC+05:30), so local and UTC times differ."""
    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_release_keeps_its_record_in_release_json(layout: Layout, india_time: None) -> None:
    release = new_release(layout, "backend", "abc123", requirements_sha256="r" * 8)
    assert release.path.parent == layout.releases("backend")
    stamp, tag = release.id.split("-")
    assert tag == "abc123"
    made = datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - made).total_seconds()) < 60  # a UTC stamp, not local time
    meta = release.meta
    assert (meta["state"], meta["requirements_sha256"]) == ("prepared", "r" * 8)
    assert meta["created"].endswith("+00:00")
    assert release.state == "prepared"

    (release.path / "release.json.tmp").write_text("{half written by a killed upd")
    release.go_live(7)
    assert (release.state, release.meta["job_id"]) == ("live", 7)
    assert release.meta["live_since"] > meta["created"]
    assert release.meta["live_since"].endswith("+00:00")
    assert release.meta["requirements_sha256"] == "r" * 8  # an update keeps the other fields
    # the partial write was replaced, and is gone with the rename
    assert sorted(p.name for p in release.path.iterdir()) == ["release.json"]
    assert (release.path / "release.json").read_text() == json.dumps(release.meta, indent=2)

    (release.path / "release.json").write_text("{not json")
    assert (release.meta, release.state) == ({}, "prepared")
    (release.path / "release.json").unlink()
    assert release.meta == {}


def served(layout: Layout, tag: str, state: str, live_since: str) -> Release:
    release = new_release(layout, "backend", tag)
    release.update(state=state, live_since=live_since)
    return release


def test_releases_current_find_and_the_rollback_target(layout: Layout) -> None:
    assert releases(layout, "backend") == [] and current(layout, "backend") is None
    assert previous_served(layout, "backend") is None
    # made in this order; switched in b, a (rolled back to), c; failed never served
    a = served(layout, "a", "retired", "2026-01-01T12:00:00")
    failed = served(layout, "f", "failed", "2026-01-01T13:00:00")
    b = served(layout, "b", "retired", "2026-01-01T11:00:00")
    c = served(layout, "c", "live", "2026-01-01T14:00:00")
    legacy = new_release(layout, "backend", "l")  # served before live_since was recorded
    legacy.update(state="retired")
    prepared = new_release(layout, "backend", "p")
    (layout.releases("backend") / "stray-file").write_text("")  # not a release
    assert releases(layout, "backend") == [a, failed, b, c, legacy, prepared]
    assert find(layout, "backend", b.id) == b and find(layout, "backend", "nope") is None

    assert previous_served(layout, "backend") == c  # nothing current: the last served
    switch(layout, "backend", c)
    assert current(layout, "backend") == c
    # the one switched in most recently, not the one made last, nor the failed one, nor c
    assert previous_served(layout, "backend") == a
    switch(layout, "backend", a)
    assert previous_served(layout, "backend") == c

    link = layout.current_link("backend")
    assert os.readlink(link) == f"releases/{a.id}"  # relative: the folder can move
    staging = link.with_name("current.next")
    assert not staging.exists()
    staging.symlink_to("somewhere")  # left by a killed switch: replaced, then renamed away
    switch(layout, "backend", b)
    assert current(layout, "backend") == b and not staging.is_symlink()

    shutil.rmtree(b.path)
    assert current(layout, "backend") is None  # dangling
    link.unlink()
    link.mkdir()
    assert current(layout, "backend") is None  # not a link


def test_prune_keeps_the_newest_the_current_and_the_rollback_target(layout: Layout) -> None:
    oldest = new_release(layout, "backend", "o")
    old_target = served(layout, "r", "retired", "2026-01-01T10:00:00")
    doomed = [new_release(layout, "backend", f"x{i}") for i in range(2)]
    live = served(layout, "l", "live", "2026-01-01T11:00:00")
    newest = [new_release(layout, "backend", f"n{i}") for i in range(2)]
    switch(layout, "backend", live)
    assert prune(layout, "backend", keep=10) == []
    assert prune(layout, "backend", keep=6) == [oldest.id]
    assert prune(layout, "backend", keep=2) == [r.id for r in doomed]
    assert releases(layout, "backend") == [old_target, live, *newest]
    assert prune(layout, "backend", keep=0) == [r.id for r in newest]
    assert releases(layout, "backend") == [old_target, live]


# Real processes.


def test_alive_tells_running_exited_zombie_and_missing_processes(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "30"])
    assert server.alive(child.pid)
    child.kill()
    time.sleep(0.2)
    assert not server.alive(child.pid)  # our exited child: reaped, not alive
    assert not server.alive(child.pid)  # and now gone

    # a zombie that is not our child: its parent never reaps it
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import os, time\npid = os.fork()\nif pid == 0: os._exit(0)\n"
         "print(pid, flush=True)\ntime.sleep(30)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        zombie = int(parent.stdout.readline())
        deadline = time.monotonic() + 5
        while "Z" not in Path(f"/proc/{zombie}/stat").read_text().rsplit(")", 1)[1][:3]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert not server.alive(zombie)
    finally:
        parent.kill()
        parent.wait()

    # a command name with ") Z (" in it is still read as running
    odd = tmp_path / "a) Z (b"
    odd.symlink_to("/bin/sleep")
    named = subprocess.Popen([str(odd), "30"])
    try:
        assert server.alive(named.pid)
    finally:
        named.kill()
        named.wait()


def test_running_reads_the_recorded_server_only_while_it_lives(layout: Layout) -> None:
    assert server.running(layout) is None  # no record
    layout.server_file.parent.mkdir(parents=True)
    for broken in ("{oops", json.dumps({"pid": os.getpid()}),
                   json.dumps({"pid": None, "release": "r", "private_port": 1})):
        layout.server_file.write_text(broken)
        assert server.running(layout) is None
    record = {"pid": os.getpid(), "release": "r1", "private_port": 8123}
    layout.server_file.write_text(json.dumps(record))
    assert server.running(layout) == server.Running(os.getpid(), "r1", 8123)
    dead = subprocess.Popen(["true"])
    dead.wait()
    layout.server_file.write_text(json.dumps({**record, "pid": dead.pid}))
    assert server.running(layout) is None


# Leaves a file named by its first argument when SIGTERM (a graceful stop) reaches it.
TERM_AWARE = """
import pathlib, signal, sys, time
def drained(*_):
    pathlib.Path(sys.argv[1]).touch()
    sys.exit(0)
signal.signal(signal.SIGTERM, drained)
pathlib.Path(sys.argv[1] + ".up").touch()
time.sleep(60)
"""


def term_aware(marker: Path, *args: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", TERM_AWARE, str(marker), *args])
    while not marker.with_name(marker.name + ".up").exists():
        time.sleep(0.02)
    return process


def pretend_server(release: Release, port: int | None = None) -> subprocess.Popen[bytes]:
    """A process whose command line names the release's state file, as a release's does."""
    state = release.path / "state.json"
    process = term_aware(release.path / "drained", str(state))
    state.write_text(json.dumps({"pid": process.pid, "private_port": port}))
    return process


def test_orphans_are_the_live_release_processes_other_than_the_recorded_server(
    layout: Layout,
) -> None:
    recorded, orphan, reused, gone = (new_release(layout, "backend", t) for t in "abcd")
    serving = pretend_server(recorded, 9001)
    left = pretend_server(orphan, 9002)
    stranger = subprocess.Popen(["sleep", "60"])  # a pid reused by an unrelated process
    (reused.path / "state.json").write_text(json.dumps({"pid": stranger.pid}))
    finished = pretend_server(gone)
    finished.kill()
    finished.wait()
    (new_release(layout, "backend", "e").path / "state.json").write_text('{"pid": "1"}')
    layout.server_file.parent.mkdir(parents=True, exist_ok=True)
    layout.server_file.write_text(json.dumps(
        {"pid": serving.pid, "release": recorded.id, "private_port": 9001}))
    try:
        assert server.orphans(layout) == [server.Running(left.pid, orphan.id, 9002)]
        layout.server_file.unlink()  # no recorded server: every release process is left over
        assert [o.release for o in server.orphans(layout)] == [recorded.id, orphan.id]
        (orphan.path / "state.json").write_text(json.dumps({"pid": left.pid}))
        assert server.orphans(layout)[1] == server.Running(left.pid, orphan.id, 0)
        assert server.stop_orphans(layout) == [server.Running(serving.pid, recorded.id, 9001),
                                               server.Running(left.pid, orphan.id, 0)]
        assert (recorded.path / "drained").exists() and (orphan.path / "drained").exists()
        assert not server.alive(serving.pid) and not server.alive(left.pid)
        assert server.alive(stranger.pid)
    finally:
        for process in (serving, left, stranger):
            process.kill()
            process.wait()


def test_stop_drains_then_kills_past_the_drain(tmp_path: Path) -> None:
    server.stop(2**22 + 1, 1)  # no such process: nothing to do
    polite = term_aware(tmp_path / "drained")
    started = time.monotonic()
    server.stop(polite.pid, 30)
    assert time.monotonic() - started < 5 and (tmp_path / "drained").exists()
    assert not server.alive(polite.pid)

    ready = tmp_path / "ready"
    stubborn = subprocess.Popen(
        [sys.executable, "-c", "import signal, sys, time, pathlib\n"
         "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
         "pathlib.Path(sys.argv[1]).touch()\ntime.sleep(60)\n", str(ready)])
    while not ready.exists():
        time.sleep(0.02)
    started = time.monotonic()
    server.stop(stubborn.pid, 0.5)
    assert 0.5 <= time.monotonic() - started < 5
    assert not server.alive(stubborn.pid)


# A real release process: `python -m textbook_api.serve` of this checkout.


@pytest.fixture
def release_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    command.upgrade(alembic_config(database_url, PACKAGE_DIR / "migrations"), "head")
    return {**os.environ, "DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url}


@pytest.fixture
def shared() -> Iterator[socket.socket]:
    """The keeper's listening socket (held here, as the keeper would)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock
    sock.close()


def installed(layout: Layout, tag: str) -> Release:
    """A release whose environment is this test run's own."""
    release = new_release(layout, "backend", tag)
    (release.path / "venv").symlink_to(sys.prefix)
    return release


@pytest.mark.integration
def test_a_release_starts_privately_passes_its_gate_is_switched_in_and_drains(
    layout: Layout, shared: socket.socket, release_env: dict[str, str],
) -> None:
    release = installed(layout, "r1")
    started = server.start(release, shared, release_env)
    try:
        state = json.loads((release.path / "state.json").read_text())
        assert started == server.Running(state["pid"], release.id, state["private_port"])
        assert state["serving"] is False and server.running(layout) is None
        assert os.getsid(started.pid) == started.pid  # its own session: a terminal's ^C spares it
        assert os.readlink(f"/proc/{started.pid}/cwd") == str(release.path)
        assert (release.path / "server.log").exists()
        assert os.readlink(f"/proc/{started.pid}/fd/0") == "/dev/null"
        assert os.readlink(f"/proc/{started.pid}/fd/1") == str(release.path / "server.log")

        answer = server.gate(started, Gate(interval=0.05))
        assert answer.startswith('HTTP 200: {"status":"ready"')

        server.switch_in(started, release, layout)
        assert json.loads((release.path / "state.json").read_text())["serving"] is True
        assert server.running(layout) == started
        assert sorted(p.name for p in layout.server_file.parent.iterdir()) == \
            ["releases", "server.json"]
        port = shared.getsockname()[1]
        assert httpx.get(f"http://127.0.0.1:{port}/health").json() == {"status": "ok"}
    finally:
        server.stop(started.pid, 10)
    assert not server.alive(started.pid) and server.running(layout) is None


def test_a_release_that_exits_before_listening_fails_its_start(
    layout: Layout, shared: socket.socket, release_env: dict[str, str],
) -> None:
    release = new_release(layout, "backend", "broken")
    python = release.path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\necho cannot start >&2\nexit 3\n")
    python.chmod(0o755)
    (release.path / "state.json").write_text(json.dumps({"pid": 1, "private_port": 1}))
    with pytest.raises(OperationFailed) as info:
        server.start(release, shared, release_env)
    assert str(info.value) == (f"release {release.id} exited with 3 before listening;"
                               f" see {release.path / 'server.log'}")
    assert (release.path / "server.log").read_text() == "cannot start\n"
    assert not (release.path / "state.json").exists()  # a former run's state is not read


def test_the_gate_keeps_trying_while_the_release_lives() -> None:
    answers = iter([503, 503, 200])

    def ready(request: Request) -> Reply:
        return next(answers), {}, {"status": request.path}

    with stand_in(ready) as url:
        port = int(url.rsplit(":", 1)[1])
        living = server.Running(os.getpid(), "r1", port)
        assert server.gate(living, Gate(interval=0.01)) == 'HTTP 200: {"status": "/ready"}'


def test_a_dead_release_fails_its_gate_and_its_switch_at_once(
    layout: Layout, tmp_path: Path,
) -> None:
    release = new_release(layout, "backend", "dead")
    dead = subprocess.Popen(["true"])
    dead.wait()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    gone = server.Running(dead.pid, release.id, port)
    started = time.monotonic()
    with pytest.raises(OperationFailed) as info:
        server.gate(gone, Gate(interval=0.5, attempts=20))
    assert time.monotonic() - started < 2  # not 20 tries: the process is gone
    assert str(info.value).startswith(
        f"release {release.id} failed its health gate at http://127.0.0.1:{port}/ready: Connect")

    # a process that dies on SIGUSR1 (as one without the handler does) never serves
    victim = subprocess.Popen(["sleep", "30"])
    started = time.monotonic()
    with pytest.raises(OperationFailed) as info:
        server.switch_in(server.Running(victim.pid, release.id, port), release, layout)
    assert time.monotonic() - started < 5
    assert str(info.value) == f"release {release.id} did not start serving the shared port"
    assert not server.alive(victim.pid)
    assert server.running(layout) is None and not layout.server_file.exists()
