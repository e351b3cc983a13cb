"""Locks that keep two runs of an operation apart; a lock not had in time raises LockHeld."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, text

from pipeline.errors import LockHeld

POLL_SECONDS = 0.2


def holder_identity(operation: str) -> str:
    return f"textbook-pipeline {operation} pid={os.getpid()} host={socket.gethostname()}"


def advisory_key(name: str) -> int:
    # Below 2**31 so pg_locks shows it as classid 0, objid key.
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def _advisory_holder(connection: Connection, key: int) -> str:
    row = connection.execute(
        text(
            "SELECT a.pid, a.application_name, a.client_addr, a.backend_start"
            " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = :key"
            # Advisory locks belong to a database: a holder of the same key elsewhere is not ours.
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        {"key": key},
    ).first()
    if row is None:
        return "an unknown session"
    return f"'{row.application_name}' (server pid {row.pid}, since {row.backend_start:%H:%M:%S})"


def _postgres_advisory_lock(connection: Connection, name: str, timeout: float) -> Iterator[None]:
    """A session-level advisory lock, so it outlives the migration's own transactions."""
    key = advisory_key(name)
    deadline = time.monotonic() + timeout
    while not connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar():
        if time.monotonic() >= deadline:
            holder = _advisory_holder(connection, key)
            connection.rollback()
            raise LockHeld(f"the {name} lock is held by {holder}; waited {timeout:g}s")
        time.sleep(POLL_SECONDS)
    connection.commit()
    try:
        yield
    finally:
        connection.rollback()
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        connection.commit()


# Made context managers by a call, not a decorator: mutmut (`nox -s mutation`) leaves decorated
# functions unmutated, and these bodies are what the lock tests are for.
postgres_advisory_lock = contextmanager(_postgres_advisory_lock)


@dataclass(frozen=True)
class Holder:
    """Who a lock file says holds (or, when found stale, held) the lock."""

    description: str
    job_id: int | None = None  # the recorded job of the run that took it

    def __str__(self) -> str:
        return self.description


def _file_holder(path: Path) -> Holder:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        job_id = record.get("job_id")
        return Holder(f"'{record['holder']}' since {record['since']}",
                      job_id if isinstance(job_id, int) else None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return Holder("an unknown process")


def _file_lock(
    path: Path, operation: str, timeout: float, *, renew_seconds: float = 0,
    job_id: int | None = None,
) -> Iterator[Holder | None]:
    """An flock on `path` (released by the kernel if the holder dies); the file names the holder
    and, given `job_id`, the job recording its run.

    Yields the holder a previous run left in the file when it died holding the lock (a stale
    lock, recovered by taking it), else None. With `renew_seconds`, a lease: the record's
    `renewed` time is refreshed that often while the lock is held.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _file_holder(path)
                    raise LockHeld(
                        f"the lock {path} is held by {holder}; waited {timeout:g}s"
                    ) from None
                time.sleep(POLL_SECONDS)
        stale = _file_holder(path) if os.fstat(fd).st_size else None
        since = datetime.now(UTC).isoformat()
        record: dict[str, object] = {
            "holder": holder_identity(operation), "since": since, "renewed": since,
            **({"job_id": job_id} if job_id is not None else {}),
        }

        def write_record() -> None:
            # Overwrite in one write, padded with spaces (JSON allows them) over a longer old
            # record: truncating first left the file empty between two calls, so a reader, or
            # the run recovering from a holder killed there, found no holder.
            data = json.dumps(record).encode()
            os.pwrite(fd, data.ljust(os.fstat(fd).st_size), 0)
            os.ftruncate(fd, len(data))

        write_record()
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(renew_seconds):
                record["renewed"] = datetime.now(UTC).isoformat()
                write_record()

        renewer = threading.Thread(target=renew, daemon=True) if renew_seconds > 0 else None
        if renewer is not None:
            renewer.start()
        try:
            yield stale
        finally:
            stop.set()
            if renewer is not None:
                renewer.join()
            os.ftruncate(fd, 0)  # released: the file names no holder
    finally:
        os.close(fd)


file_lock = contextmanager(_file_lock)
