"""The socket keeper: holds the local stack's listening socket and hands it to each release.

Every release process accepts from this one socket (one accept queue), so starting a new
release and draining the old one never drops a connection waiting to be accepted. The keeper
only holds the socket; it never touches traffic.

    python -m pipeline.local.keeper --host 127.0.0.1 --port 8765 --control DIR/keeper.sock
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import subprocess  # nosec B404: starts our own keeper module
import sys
import time
from pathlib import Path

from pipeline.errors import OperationFailed, UsageError

START_SECONDS = 10.0


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def serve(host: str, port: int, control: Path) -> None:
    listener = _listen(host, port)
    control.unlink(missing_ok=True)
    handout = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    handout.bind(str(control))
    handout.listen(16)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    control.with_suffix(".pid").write_text(str(os.getpid()), encoding="utf-8")
    try:
        while True:
            connection, _ = handout.accept()
            with connection:
                socket.send_fds(connection, [b"listener"], [listener.fileno()])
    finally:
        control.unlink(missing_ok=True)
        control.with_suffix(".pid").unlink(missing_ok=True)


def fetch(control: Path) -> socket.socket | None:
    """The shared listening socket from a running keeper, or None when none runs."""
    if not control.exists():
        return None
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(str(control))
        _, fds, _, _ = socket.recv_fds(client, 16, 1)
    except OSError:
        return None
    finally:
        client.close()
    return socket.socket(fileno=fds[0]) if fds else None


def port_owner(port: int) -> str:
    """Who listens on a TCP port, from /proc (pid and command line), as far as we may see."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and wanted & _fd_targets(proc):
            try:
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except OSError:
                command = "?"
            return f"pid {proc.name} ({command[:120]})"
    return "another process"


def _fd_targets(proc: Path) -> set[str]:
    targets: set[str] = set()
    try:
        fds = list((proc / "fd").iterdir())
    except OSError:
        return targets
    for fd in fds:
        try:
            targets.add(os.readlink(fd))
        except OSError:
            continue  # closed meanwhile (or not ours to see)
    return targets


def check_port(host: str, port: int, control: Path) -> None:
    """Refuse (exit 2) a port that another process than our keeper listens on."""
    shared = fetch(control)
    if shared is not None:
        shared.close()
        return
    try:
        _listen(host, port).close()
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is taken by {port_owner(port)}") from None
        raise UsageError(f"cannot listen on {host}:{port}: {error.strerror}") from None


def ensure(host: str, port: int, control: Path, log: Path) -> socket.socket:
    """The shared socket, starting a keeper first when none runs; a foreign port owner: exit 2."""
    shared = fetch(control)
    if shared is not None:
        return shared
    check_port(host, port, control)
    control.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        subprocess.Popen(  # nosec B603: our own module, fixed arguments
            [sys.executable, "-m", "pipeline.local.keeper", "--host", host, "--port", str(port),
             "--control", str(control)],
            stdout=output, stderr=output, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        shared = fetch(control)
        if shared is not None:
            return shared
        time.sleep(0.05)
    raise OperationFailed(f"the socket keeper did not start within {START_SECONDS:g}s; see {log}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="pipeline.local.keeper", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control", type=Path, required=True)
    args = parser.parse_args()
    serve(args.host, args.port, args.control)


if __name__ == "__main__":
    main()
