"""Every benchmark checks its prerequisites before it measures anything, and fails in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

# Under pytest-xdist one worker runs this module: its bare environment is made once.
pytestmark = [pytest.mark.database_independent, pytest.mark.xdist_group("bare-python")]

BENCHES = sorted(path.stem for path in (ROOT / "bench").glob("bench_*.py"))


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An interpreter of a fresh environment with nothing installed."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv / "bin" / "python"


def run_bench(python: Path | str, bench: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), str(ROOT / "bench" / f"{bench}.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def test_every_bench_is_covered() -> None:
    assert BENCHES == ["bench_deploy", "bench_gate", "bench_image", "bench_index",
                       "bench_page_weight", "bench_query", "bench_query_breakdown"]


@pytest.mark.parametrize("bench", BENCHES)
def test_a_bench_without_its_environment_fails_in_one_line(bare_python: Path, bench: str) -> None:
    result = run_bench(bare_python, bench)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{bench}: cannot run, missing Python modules in ")
    assert "textbook_api" in lines[0]
    fix = "uv sync --frozen --all-groups" if bench == "bench_gate" else "uv sync --frozen"
    assert f"(to fix: {fix}" in lines[0]
    assert ("--all-groups" in lines[0]) == (bench == "bench_gate")


@pytest.mark.parametrize("bench", ["bench_deploy", "bench_index", "bench_query",
                                   "bench_query_breakdown"])
def test_a_bench_in_the_project_environment_has_what_it_needs(bench: str) -> None:
    result = run_bench(sys.executable, bench, "--check")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{bench}: prerequisites present\n"
