"""The locks that keep two runs apart, in-process and fast: the lock file's record, its lease,
stale-holder recovery, and PostgreSQL's advisory lock (on the test server).

The operations' tests take these locks in subprocesses (the doors); these pin the details a
small change could break unnoticed there (`nox -s mutation` measures that).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, text

from conftest import advisory_lock_holders
from pipeline.errors import LockHeld
from pipeline.locks import (
    Holder,
    _advisory_holder,
    _file_holder,
    advisory_key,
    file_lock,
    holder_identity,
    postgres_advisory_lock,
)

IDENTITY = f"textbook-pipeline deploy pid={os.getpid()} host={socket.gethostname()}"


def record(path: Path) -> dict[str, object]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def test_the_holder_is_named_by_operation_process_and_host() -> None:
    assert holder_identity("deploy") == IDENTITY


def test_the_advisory_key_is_the_names_crc32_below_2_to_the_31() -> None:
    # crc32("textbook-migrate") is 3202509671: the top bit is dropped so pg_locks shows the key.
    assert advisory_key("textbook-migrate") == 3202509671 - 2**31
    assert advisory_key("b") == 1908338681


def test_a_held_lock_file_names_its_holder_and_job_and_is_emptied_on_release(
    tmp_path: Path,
) -> None:
    path = tmp_path / "locks" / "deploy.lock"  # its folder is made
    with file_lock(path, "deploy", 0, job_id=7) as stale:
        assert stale is None
        held = record(path)
        assert held == {"holder": IDENTITY, "since": held["since"], "renewed": held["since"],
                        "job_id": 7}
    assert path.read_text() == ""
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 & ~umask
    with file_lock(path, "deploy", 0):
        assert "job_id" not in record(path)


def test_a_second_taker_waits_its_timeout_then_is_told_who_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "deploy.lock"
    with file_lock(path, "deploy", 0):
        since = record(path)["since"]
        started = time.monotonic()
        with pytest.raises(LockHeld) as raised:
            with file_lock(path, "deploy", 0.5):
                pass
        waited = time.monotonic() - started
    assert str(raised.value) == (
        f"the lock {path} is held by '{IDENTITY}' since {since}; waited 0.5s")
    assert waited >= 0.5  # no upper bound: a loaded machine may be slow


def test_a_waiter_takes_the_lock_when_the_holder_lets_go(tmp_path: Path) -> None:
    path = tmp_path / "deploy.lock"
    taken = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with file_lock(path, "first", 0):
            taken.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    taken.wait(5)
    threading.Timer(0.3, release.set).start()
    with file_lock(path, "deploy", 5) as stale:
        assert stale is None  # let go cleanly: nothing stale
        assert record(path)["holder"] == IDENTITY
    holder.join()


def test_a_stale_record_is_reported_and_fully_replaced(tmp_path: Path) -> None:
    path = tmp_path / "deploy.lock"
    # A holder killed with the lock leaves its record (longer than ours: it must not show
    # through after our shorter one).
    path.write_text(json.dumps({"holder": "x" * 500, "since": "then", "job_id": 12}))
    with file_lock(path, "deploy", 0) as stale:
        assert stale == Holder(f"'{'x' * 500}' since then", 12)
        assert str(stale) == f"'{'x' * 500}' since then"
        assert record(path)["holder"] == IDENTITY


@pytest.mark.parametrize(("left", "expected"), [
    ({"holder": "old", "since": "then", "job_id": "12"}, Holder("'old' since then", None)),
    ({"holder": "old", "since": "then"}, Holder("'old' since then", None)),
    ({"holder": "old"}, Holder("an unknown process")),
    (["not", "a", "record"], Holder("an unknown process")),
    ("{half a record", Holder("an unknown process")),
])
def test_what_a_dead_holder_left_is_read_as_far_as_it_can_be(
    tmp_path: Path, left: object, expected: Holder
) -> None:
    path = tmp_path / "deploy.lock"
    path.write_text(left if isinstance(left, str) else json.dumps(left))
    with file_lock(path, "deploy", 0) as stale:
        assert stale == expected


def test_a_lease_is_renewed_while_held_and_not_after(tmp_path: Path) -> None:
    path = tmp_path / "deploy.lock"
    with file_lock(path, "deploy", 0, renew_seconds=0.05, job_id=3):
        first = record(path)
        deadline = time.monotonic() + 10
        renewed = first
        while renewed["renewed"] == first["renewed"]:
            assert time.monotonic() < deadline, "the lease was never renewed"
            time.sleep(0.05)
            renewed = record(path)
        assert renewed == {**first, "renewed": renewed["renewed"]}  # only the time moves
        assert str(renewed["renewed"]) > str(first["renewed"])
    time.sleep(0.2)
    assert path.read_text() == ""


def test_between_any_two_writes_of_a_held_lease_the_file_names_its_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a reader (a waiting run, or the run recovering from a holder killed right there)
    finds after each write the holder makes: its record, until the release empties the file."""
    path = tmp_path / "deploy.lock"
    dead = "a holder that died, its record longer than the new one's " * 4
    path.write_text(json.dumps({"holder": dead, "since": "2026-11-23T18:00:00+00:00"}))
    found: list[str] = []

    def observed(write: Callable[..., object]) -> Callable[..., object]:
        def call(*args: object) -> object:
            result = write(*args)
            found.append(str(_file_holder(path)))
            return result
        return call

    monkeypatch.setattr(os, "pwrite", observed(os.pwrite))
    monkeypatch.setattr(os, "ftruncate", observed(os.ftruncate))
    with file_lock(path, "deploy", 0, renew_seconds=0.01):
        deadline = time.monotonic() + 10
        while len(found) < 20:
            assert time.monotonic() < deadline, f"only {len(found)} writes: {found}"
            time.sleep(0.01)
    *held, released = found
    stale = f"'{dead}' since 2026-11-23T18:00:00+00:00"
    mine = f"'{IDENTITY}' since "
    assert all(holder == stale or holder.startswith(mine) for holder in held), held
    assert held[-1].startswith(mine) and released == "an unknown process"


def test_without_a_lease_the_record_is_written_once(tmp_path: Path) -> None:
    path = tmp_path / "deploy.lock"
    with file_lock(path, "deploy", 0):
        first = path.read_text()
        time.sleep(0.2)
        assert path.read_text() == first


@pytest.fixture
def connections(postgres_url: str) -> Iterator[tuple[Connection, Connection]]:
    engine = create_engine(postgres_url, connect_args={"application_name": "first-holder"})
    other = create_engine(postgres_url)
    with engine.connect() as first, other.connect() as second:
        yield first, second
    engine.dispose()
    other.dispose()


def test_the_advisory_lock_outlives_transactions_and_names_its_holder(
    connections: tuple[Connection, Connection],
) -> None:
    first, second = connections
    with postgres_advisory_lock(first, "migrate", 0):
        first.execute(text("SELECT 1"))
        first.commit()  # the migration's own transactions: the lock stays
        assert advisory_lock_holders(second, "migrate") == 1
        pid = first.execute(text("SELECT pg_backend_pid()")).scalar_one()
        started = time.monotonic()
        with pytest.raises(LockHeld) as raised:
            with postgres_advisory_lock(second, "migrate", 0.5):
                pass
        waited = time.monotonic() - started
        assert str(raised.value).startswith(
            f"the migrate lock is held by 'first-holder' (server pid {pid}, since ")
        assert str(raised.value).endswith("); waited 0.5s")
        assert waited >= 0.5  # no upper bound: a loaded machine may be slow
        assert not second.in_transaction()  # the failed wait left no transaction open
    assert not first.in_transaction()
    assert advisory_lock_holders(second, "migrate") == 0
    with postgres_advisory_lock(second, "migrate", 0):  # released: the next one takes it
        assert advisory_lock_holders(first, "migrate") == 1


def test_an_advisory_waiter_takes_the_lock_when_the_holder_lets_go(
    connections: tuple[Connection, Connection],
) -> None:
    first, second = connections
    with postgres_advisory_lock(first, "migrate", 0):
        threading.Timer(0.3, lambda: first.execute(
            text("SELECT pg_advisory_unlock(:key)"), {"key": advisory_key("migrate")})).start()
        with postgres_advisory_lock(second, "migrate", 5):
            assert advisory_lock_holders(first, "migrate") == 1


def test_a_holder_gone_before_it_could_be_named_is_an_unknown_session(
    connections: tuple[Connection, Connection], postgres_url: str
) -> None:
    first, _ = connections
    admin = create_engine(postgres_url.rsplit("/", 1)[0] + "/postgres")
    with admin.connect() as elsewhere:
        # The same key held in another database of the server is another lock.
        elsewhere.execute(text("SELECT pg_advisory_lock(:key)"), {"key": advisory_key("migrate")})
        assert _advisory_holder(first, advisory_key("migrate")) == "an unknown session"
    admin.dispose()
    assert _advisory_holder(first, advisory_key("held by nobody")) == "an unknown session"
