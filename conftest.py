"""Shared test helpers. Test databases: every test gets an empty database of its own (on
PostgreSQL, one of its process's, emptied between tests: see PostgresDatabases); TEST_DATABASE
(sqlite | postgres) picks the dialect, as the nox `tests` matrix sets it. Under CI=true a
missing PostgreSQL server fails the tests that need it; elsewhere they skip.

Cohere is the one remote service the tests stand in for, with `FakeCohere` on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.pool import NullPool

TEST_DATABASE = os.environ.get("TEST_DATABASE", "sqlite")
POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def pytest_configure(config: pytest.Config) -> None:
    if TEST_DATABASE not in ("sqlite", "postgres"):
        raise pytest.UsageError(f"TEST_DATABASE must be sqlite or postgres, not {TEST_DATABASE!r}")


#: The fixtures through which a test reaches TEST_DATABASE's database (directly or through
#: another fixture, such as settings_env).
DATABASE_FIXTURES = frozenset({"database_url", "postgres_url", "module_database_url"})


def uses_test_database(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    if item.get_closest_marker("database_independent"):
        return False
    return bool(DATABASE_FIXTURES.intersection(names)) or bool(item.get_closest_marker("postgres"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A PostgreSQL session runs only the tests that use TEST_DATABASE's database: the others
    (no database fixture, or marked `database_independent` because their subprocesses make a
    database of their own) would repeat the SQLite session's work exactly, so the matrix's
    combined coverage loses nothing."""
    if TEST_DATABASE != "postgres":
        return
    repeated = [item for item in items if not uses_test_database(item)]
    if repeated:
        config.hook.pytest_deselected(items=repeated)
        items[:] = [item for item in items if item not in repeated]


def advisory_lock_holders(connection: Connection, name: str) -> int:
    """How many other sessions hold the advisory lock of `name` in this connection's database.

    pg_locks lists the locks of every database on the server, and tests running in parallel hold
    the same keys in databases of their own: counting those would see a holder that is not there.
    """
    from pipeline.locks import advisory_key

    return int(connection.execute(text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND objid = :key AND pid <> pg_backend_pid()"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
        {"key": advisory_key(name)}).scalar_one())


def unavailable(message: str) -> NoReturn:
    """A tool or server a test needs is missing: skip the test here, fail it under CI (which
    provides them all), so a CI run never passes by skipping."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.hookimpl(tryfirst=True)  # before xdist's worker reports its test ids
def pytest_collection_finish(session: pytest.Session) -> None:
    """Make `--dist=loadgroup` keep each `xdist_group` on one worker (the nox tests session).

    pytest-xdist 3.8 tags a grouped test by appending `@GROUP` to `Node._nodeid`, which pytest
    9.2 no longer reads (node ids live in `Node._id`), so its groups were silently ignored and a
    module's shared fixtures (an image build, a deployed stack) were made on every worker."""
    if not getattr(session.config.option, "loadgroup", False):
        return
    from _pytest.nodeid import NodeId

    # Schemathesis's per-operation items share their function's node id under pytest 9.2, and
    # xdist runs one test per id: without their own names, 10 of the 12 fuzz tests never ran.
    ids = Counter(item.nodeid for item in session.items)
    for item in session.items:
        if ids[item.nodeid] > 1:
            item._id = NodeId.parse(f"{item.nodeid.rsplit('::', 1)[0]}::{item.name}")
    for item in session.items:
        groups = sorted({str(mark.args[0]) for mark in item.iter_markers("xdist_group")})
        if groups and "@" not in item.nodeid:
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(groups)}")


class PostgresDatabases:
    """This test process's databases on the PostgreSQL server, each emptied for its next test.

    Making a database copies its template's catalogs (7.5 MB of pages through the WAL: 0.13 to
    0.3 CPU-s of the server, most of what the server did in a PostgreSQL session); emptying one
    (its connections ended, its schemas dropped, `public` made again) costs milliseconds. A
    database that cannot be emptied, or that someone connected to again meanwhile, is dropped
    instead; the rest are dropped when the test session ends.
    """

    def __init__(self) -> None:
        self._admin: Engine | None = None
        self._free: list[str] = []
        self._made: list[str] = []

    def _connect(self) -> Connection:
        if self._admin is None:
            self._admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            return self._admin.connect()
        except OperationalError as error:
            unavailable(f"PostgreSQL at {make_url(POSTGRES_ADMIN_URL).host} is unreachable:"
                        f" {error.orig}")

    @staticmethod
    def url(name: str) -> str:
        return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(
            hide_password=False)

    @contextmanager
    def database(self) -> Iterator[str]:
        """An empty database for the caller's use only."""
        with self._connect() as admin:
            if self._free:
                name = self._free.pop()
            else:
                name = f"textbook_test_{uuid.uuid4().hex[:12]}"
                admin.execute(text(f'CREATE DATABASE "{name}"'))
                self._made.append(name)
        try:
            yield self.url(name)
        finally:
            if self._emptied(name):
                self._free.append(name)
            else:
                self._drop(name)

    def _emptied(self, name: str) -> bool:
        others = ("SELECT pid FROM pg_stat_activity WHERE datname = :name"
                  " AND pid <> pg_backend_pid()")
        try:
            with self._connect() as admin:
                admin.execute(text(f"SELECT pg_terminate_backend(pid, 10000) FROM ({others}) o"),
                              {"name": name})
            engine = create_engine(self.url(name), isolation_level="AUTOCOMMIT",
                                   poolclass=NullPool)
            try:
                with engine.connect() as connection:
                    schemas = connection.execute(text(
                        "SELECT nspname FROM pg_namespace WHERE nspname <> 'information_schema'"
                        r" AND nspname NOT LIKE 'pg\_%'")).scalars().all()
                    for schema in schemas:
                        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                    connection.execute(text("CREATE SCHEMA public"))
                    return not connection.execute(text(others), {"name": name}).first()
            finally:
                engine.dispose()
        except SQLAlchemyError:
            return False

    def _drop(self, name: str) -> None:
        with self._connect() as admin:
            admin.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._made.remove(name)

    def drop_all(self) -> None:
        for name in list(self._made):
            self._drop(name)
        self._free.clear()
        if self._admin is not None:
            self._admin.dispose()


POSTGRES_DATABASES = PostgresDatabases()


def pytest_sessionfinish(session: pytest.Session) -> None:
    POSTGRES_DATABASES.drop_all()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """An empty PostgreSQL database on the test server, for this test only."""
    with POSTGRES_DATABASES.database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'textbook.db'}"


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    """The database of this test run's dialect (TEST_DATABASE)."""
    fixture = "postgres_url" if TEST_DATABASE == "postgres" else "sqlite_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def settings_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str
) -> dict[str, str]:
    """Point every setting at this test's own data directory and database."""
    env = {"DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from textbook_api.config import get_settings

    get_settings.cache_clear()
    return env


ROOT = Path(__file__).resolve().parent


def door_command(door: str, operation: str, *args: str) -> list[str]:
    """The argv of one door into an operation: the shell twin or the invoke task."""
    if door == "script":
        twins = sorted((ROOT / "scripts").glob(f"{operation}.*"))
        assert twins, f"no scripts/ twin for {operation}"
        interpreter = "bash" if twins[0].suffix == ".sh" else os.environ.get("PYTHON", "python3")
        return [interpreter, str(twins[0]), *args]
    import sys

    return [sys.executable, "-m", "invoke", operation, *args]


def door_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    import sys

    return {**os.environ, "PIPELINE_PYTHON": sys.executable, **(extra or {})}


def door_output(
    door: str, operation: str, args: tuple[str, ...], env: dict[str, str]
) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of one door run from the repository root."""
    import subprocess

    result = subprocess.run(door_command(door, operation, *args), env=door_env(env),
                            capture_output=True, text=True, check=False, cwd=ROOT)
    return result.returncode, result.stdout, result.stderr


def same_through_both_doors(operation: str, *args: str, env: dict[str, str]) -> str:
    """The stdout of a successful run, checked to be the same through the script and invoke."""
    script, invoke = (door_output(door, operation, args, env) for door in ("script", "invoke"))
    assert script[0] == invoke[0] == 0, script[2] + invoke[2]
    assert script[1] == invoke[1]
    return script[1]


@pytest.fixture(scope="module")
def module_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database shared by one module's tests (for fixtures that outlive a single test)."""
    if TEST_DATABASE == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'textbook.db'}"
        return
    with POSTGRES_DATABASES.database() as url:
        yield url


def write_docs(root: Path, files: dict[str, str]) -> Path:
    """Write ``{relative path: content}`` under root (content dedented)."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
    return root


Reply = tuple[int, dict[str, str], Any]


@dataclass
class Request:
    """One request a stand-in server received (its JSON body decoded, None when empty)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@contextmanager
def stand_in(respond: Callable[[Request], Reply]) -> Iterator[str]:
    """A stand-in for a remote service on 127.0.0.1: every request goes to `respond`, whose
    (status, headers, payload) is answered as JSON. Yields the server's base URL."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def handle_any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            request = Request(self.command, parts.path, parse_qs(parts.query),
                              dict(self.headers.items()), json.loads(raw) if raw else None)
            status, headers, payload = respond(request)
            data = json.dumps(payload).encode()
            self.send_response(status)
            for name, value in {**headers, "Content-Type": "application/json",
                                "Content-Length": str(len(data))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = handle_any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class FakeCohere:
    """Cohere's embed and chat endpoints on 127.0.0.1.

    Each request takes its (status, headers) from `script` while it lasts, then `status`. Embed
    answers `dimension`-sized vectors, chat answers `reply`; an error echoes the Authorization
    header back, as a careless server might, so the tests can prove the key is scrubbed.
    """

    url: str = ""
    status: int = 200
    dimension: int = 8
    reply: str = "Balance [1]."
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def respond(
        self, path: str, body: dict[str, Any], auth: str | None
    ) -> tuple[int, dict[str, str], Any]:
        self.requests.append({"path": path, "body": body, "auth": auth})
        self.times.append(time.monotonic())
        status, headers = self.script.pop(0) if self.script else (self.status, {})
        if status != 200:
            return status, headers, {"message": f"error for {auth}"}
        if path.endswith("/embed"):
            vectors = [[float(len(text) % 7 + i) for i in range(self.dimension)]
                       for text in body["texts"]]
            return status, headers, {"embeddings": {"float": vectors}}
        return status, headers, {"message": {"content": [{"type": "text", "text": self.reply}]}}


@pytest.fixture
def fake_cohere() -> Iterator[FakeCohere]:
    fake = FakeCohere()
    with stand_in(lambda request: fake.respond(request.path, request.body,
                                               request.headers.get("Authorization"))) as url:
        fake.url = url
        yield fake
