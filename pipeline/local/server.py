"""Release processes of the API on this host: start, gate on /ready, switch in, drain."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess  # nosec B404: starts the release's own interpreter
import time
from dataclasses import dataclass
from typing import Any

from pathlib import Path


from pipeline.errors import OperationFailed
from pipeline.local.releases import Layout, Release, releases
from pipeline.targets.base import Gate


@dataclass(frozen=True)
class Running:
    pid: int
    release: str
    private_port: int


def alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child that has exited
            return False
    except ChildProcessError:
        pass  # not our child: ask the kernel instead
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # A zombie has exited; only its parent (maybe another process) can reap it.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def running(layout: Layout) -> Running | None:
    try:
        record = json.loads(layout.server_file.read_text(encoding="utf-8"))
        server = Running(int(record["pid"]), str(record["release"]), int(record["private_port"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return server if alive(server.pid) else None


def _serves(pid: int, release: Release) -> bool:
    """Whether `pid` is this release's server process (not a later process given the same pid)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(release.path / "state.json").encode() in argv


def orphans(layout: Layout) -> list[Running]:
    """Release processes still alive that are not the recorded server: left by killed runs."""
    serving = running(layout)
    found = []
    for release in releases(layout, "backend"):
        state = _state(release)
        pid = state.get("pid")
        if (isinstance(pid, int) and (serving is None or pid != serving.pid)
                and alive(pid) and _serves(pid, release)):
            found.append(Running(pid, release.id, int(state.get("private_port") or 0)))
    return found


def stop_orphans(layout: Layout) -> list[Running]:
    """Drain and stop every orphaned release process (see `orphans`)."""
    stopped = orphans(layout)
    for orphan in stopped:
        stop(orphan.pid, 30)
    return stopped


def _state(release: Release) -> dict[str, Any]:
    try:
        return dict(json.loads((release.path / "state.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def start(release: Release, shared: socket.socket, env: dict[str, str]) -> Running:
    """Start the release on a private port (no user traffic yet) and wait for it to listen."""
    (release.path / "state.json").unlink(missing_ok=True)
    fd = shared.fileno()
    with (release.path / "server.log").open("ab") as log:
        process = subprocess.Popen(  # nosec B603: the release's interpreter, fixed arguments
            [str(release.path / "venv" / "bin" / "python"), "-m", "textbook_api.serve",
             "--shared-fd", str(fd), "--state-file", str(release.path / "state.json")],
            pass_fds=[fd], env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=release.path,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = _state(release)
        if state.get("pid") == process.pid:
            return Running(process.pid, release.id, int(state["private_port"]))
        if process.poll() is not None:
            raise OperationFailed(
                f"release {release.id} exited with {process.returncode} before listening;"
                f" see {release.path / 'server.log'}"
            )
        time.sleep(0.05)
    stop(process.pid, 5)
    raise OperationFailed(f"release {release.id} did not listen within 60s")


def gate(server: Running, rules: Gate) -> str:
    """Probe the private port's readiness; give up early if the release process exits."""
    return rules.wait(f"http://127.0.0.1:{server.private_port}", f"release {server.release}",
                      still_trying=lambda: alive(server.pid))


def switch_in(server: Running, release: Release, layout: Layout) -> None:
    """Let the release accept from the shared socket, then make it the recorded server."""
    os.kill(server.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not _state(release).get("serving"):
        if time.monotonic() > deadline or not alive(server.pid):
            raise OperationFailed(f"release {release.id} did not start serving the shared port")
        time.sleep(0.02)
    layout.server_file.parent.mkdir(parents=True, exist_ok=True)
    partial = layout.server_file.with_suffix(".tmp")
    partial.write_text(json.dumps(vars(server)), encoding="utf-8")
    partial.replace(layout.server_file)


def stop(pid: int, drain_seconds: float) -> None:
    """SIGTERM (graceful: stop accepting, finish requests in flight), SIGKILL past the drain."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + drain_seconds
    while alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
        time.sleep(0.05)
