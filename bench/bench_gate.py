"""How much the nox gate costs on top of the tools it runs, and what the uv backend saves.

(a) warm `nox -s lint typecheck tests(python='3.11', database='sqlite')`, venvs reused, divided
    by the same flake8 / mypy / pytest commands run directly in the ready project venv
    (goal <= 1.2);
(b) cold `nox -s lint typecheck` with the uv backend divided by the virtualenv backend, each in
    a fresh --envdir (goal <= 0.33).

Run: `uv run --frozen --all-groups python bench/bench_gate.py` (every tool group, as the raw
baseline runs the tools from this environment). It checks its prerequisites first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

from prerequisites import BOOTSTRAP, ROOT, SYNC_ALL, command, module, require
TESTS_SESSION = "tests(python='3.11', database='sqlite')"
NOX_SOURCES = ["backend", "pipeline", "tests", "bench", "noxfile.py", "tasks.py", "conftest.py"]


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(
        command,
        cwd=ROOT,
        check=True,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def nox(*args: str) -> list[str]:
    return [sys.executable, "-m", "nox", *args]


def tool(name: str) -> list[str]:
    """A tool of the environment running this bench: the baseline without nox."""
    return [sys.executable, "-m", name]


def main() -> None:
    require("bench_gate", [
        *(module(name, SYNC_ALL) for name in ("flake8", "mypy", "pytest", "pytest_cov", "nox",
                                              "virtualenv", "textbook_api")),
        command("uv", BOOTSTRAP),
        command("python3.11", "Python 3.11 on PATH (pyenv: export PYENV_VERSION=3.11.7)"),
        command("npm", "Node.js 20 and npm (the tests build the site)"),
    ])
    pytest_env = {"TEST_DATABASE": "sqlite"}
    warm_args = nox("-s", "lint", "typecheck", TESTS_SESSION)
    timed(warm_args)  # warm the reused venvs
    gate = timed(warm_args)
    raw = (
        timed([*tool("flake8"), *NOX_SOURCES])
        + timed(tool("mypy"))
        # What the 3.11 session runs: all but the integration tests, unmeasured (noxfile).
        + timed([*tool("pytest"), "--no-cov", "-m", "not integration"], pytest_env)
    )
    print(f"(a) warm gate {gate:.1f}s, raw tools {raw:.1f}s, ratio {gate / raw:.2f} (goal <= 1.2)")

    cold: dict[str, float] = {}
    for backend in ("uv", "virtualenv"):
        envdir = tempfile.mkdtemp(prefix=f"nox-{backend}-")
        try:
            cold[backend] = timed(
                nox(
                    "-s",
                    "lint",
                    "typecheck",
                    "--force-venv-backend",
                    backend,
                    "--envdir",
                    envdir,
                    "--no-reuse-existing-virtualenvs",
                )
            )
        finally:
            shutil.rmtree(envdir, ignore_errors=True)
    ratio = cold["uv"] / cold["virtualenv"]
    print(
        f"(b) cold lint+typecheck: uv {cold['uv']:.1f}s, virtualenv {cold['virtualenv']:.1f}s,"
        f" ratio {ratio:.2f} (goal <= 0.33)"
    )


if __name__ == "__main__":
    main()
