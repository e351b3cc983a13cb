"""Mutation testing of the core modules (`nox -s mutation [-- MODULE...]`), with mutmut.

Each module in MODULES is mutated alone and checked against its own fast tests, in a work
directory of its own under var/mutation/<module>/ (mutmut reads its settings from the current
directory's pyproject.toml and names mutants after their path, so that directory holds the
packages at their import names, symlinked, and a generated pyproject.toml). mutmut copies the
packages into mutants/ and runs pytest there; PYTHONPATH puts that copy first, for the tests
and for any process they start, ahead of the editable install's paths, and guard.py fails
every test run that imported the original instead. Equivalent mutants (equivalents.txt, each
with its reason) are left out of the score and listed.

Prints, per module, killed / total with the equivalents excluded, the surviving mutants' diffs
and the wall time. Exits 1 if a listed equivalent no longer survives (the list must stay true).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORK = ROOT / "var" / "mutation"
EQUIVALENTS = HERE / "equivalents.txt"

# The core modules: name -> (source file, its fast tests). Adding a module is one line.
MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "deployments": ("backend/textbook_api/services/deployments.py",
                    ("backend/tests/test_audit_rules.py", "backend/tests/test_deployments_api.py")),
    "redaction": ("backend/textbook_api/redaction.py",
                  ("tests/test_redaction.py", "backend/tests/test_audit_rules.py")),
    "locks": ("pipeline/locks.py", ("tests/test_locks.py",)),
    "recording": ("pipeline/recording.py",
                  ("tests/test_recorder_rules.py", "tests/test_recording.py")),
    "indexer": ("backend/textbook_api/rag/indexer.py",
                ("backend/tests/rag/test_rag_sync_rules.py",
                 "backend/tests/rag/test_rag_indexer.py")),
    "local-releases": ("pipeline/local/releases.py", ("tests/test_local_switch.py",)),
    "local-server": ("pipeline/local/server.py", ("tests/test_local_switch.py",)),
}
# Where each package is imported from (its folder's parent): mutmut needs it at the top.
PACKAGES = {"textbook_api": ROOT / "backend", "pipeline": ROOT}
# Copied next to the packages so that the tests, and the doors they start, run as in the
# repository (conftest.ROOT is then the copy).
SUPPORT = ("tests", "backend/tests", "conftest.py", "pytest.ini", "tasks.py", "scripts",
           "deploy.toml")
KILLED = {1, 3, 36, 24, -24, 152, 255}  # mutmut's exit codes for killed and timed out
SPINNER = re.compile("[\u2800-\u28ff]")
STATUS = {0: "survived", 33: "no tests", 5: "no tests", 34: "skipped", None: "not checked"}


def import_path(source: str) -> tuple[str, str]:
    """The source file's path from its package down (as mutmut names it), and its module."""
    parts = Path(source).parts
    relative = Path(*parts[next(i for i, part in enumerate(parts) if part in PACKAGES):])
    return str(relative), ".".join(relative.with_suffix("").parts)


def load_equivalents() -> dict[str, str]:
    """`mutant-name reason...` per line; `#` starts a comment line."""
    equivalents = {}
    for line in EQUIVALENTS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, reason = line.strip().partition(" ")
            equivalents[name] = reason.strip()
    return equivalents


def prepare(name: str, relative: str, tests: tuple[str, ...]) -> Path:
    """A fresh work directory: the packages and test support linked in, mutmut's settings."""
    work = WORK / name
    if work.exists():
        subprocess.run(["rm", "-rf", str(work)], check=True)
    for package, parent in PACKAGES.items():
        link = work / package
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(parent / package)
    for support in SUPPORT:
        link = work / support
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT / support)
    settings = {
        "source_paths": sorted(PACKAGES),
        "only_mutate": [relative],
        "also_copy": list(SUPPORT),
        "pytest_add_cli_args": ["--no-cov", "-p", "no:cacheprovider", "-p", "guard"],
        "pytest_add_cli_args_test_selection": list(tests),
    }
    lines = ["[tool.mutmut]", *(f"{key} = {json.dumps(value)}" for key, value in settings.items())]
    (work / "pyproject.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return work


def mutmut(args: list[str], work: Path, env: dict[str, str]) -> None:
    """Run mutmut, printing only the last of its progress lines (they redraw a spinner)."""
    process = subprocess.Popen([sys.executable, "-m", "mutmut", *args], cwd=work, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    progress = ""
    for line in process.stdout:  # universal newlines: each redraw (\r) is a line of its own
        if line.strip() and SPINNER.match(line):
            progress = line.rstrip()
            continue
        if progress:
            print(progress)
            progress = ""
        print(line, end="")
    if progress:
        print(progress)
    if process.wait():
        raise SystemExit(f"mutmut {' '.join(args)} failed in {work} (exit {process.returncode})")


def run_module(name: str, equivalents: dict[str, str]) -> tuple[int, int, list[str]]:
    """Mutate one module; returns (killed, total without equivalents, problems)."""
    source, tests = MODULES[name]
    relative, module = import_path(source)
    work = prepare(name, relative, tests)
    mutants = work / "mutants"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(mutants), str(HERE)]),
        "MUTATION_MODULE": module,
    }
    # Made before Python starts: an entry on sys.path that does not exist yet is cached as
    # "nothing here" at the first import, and the editable install's original would win.
    mutants.mkdir()
    started = time.monotonic()
    mutmut(["run"], work, env)
    seconds = time.monotonic() - started
    meta = json.loads((mutants / f"{relative}.meta").read_text(encoding="utf-8"))
    codes: dict[str, int | None] = meta["exit_code_by_key"]
    own = {key: reason for key, reason in equivalents.items() if key.startswith(f"{module}.")}
    problems = [f"{key}: listed as equivalent but {STATUS.get(codes[key], 'killed')}"
                for key in own if key in codes and codes[key] != 0]
    problems += [f"{key}: listed as equivalent but no such mutant" for key in own
                 if key not in codes]
    scored = {key: code for key, code in codes.items() if key not in own}
    killed = sum(code in KILLED for code in scored.values())
    survivors = sorted(key for key, code in scored.items() if code not in KILLED)
    print(f"\n=== {name}: {module} against {' '.join(tests)}")
    for key in survivors:
        print(f"--- {STATUS.get(scored[key], 'suspicious')}: {key}")
        mutmut(["show", key], work, env)
    for key, reason in sorted(own.items()):
        print(f"--- equivalent: {key}: {reason}")
    print(f"=== {name}: {score(killed, len(scored))} ({len(own)} equivalent excluded),"
          f" {seconds:.0f} s")
    return killed, len(scored), problems


def score(killed: int, total: int) -> str:
    return f"{killed}/{total} killed = {100 * killed / total:.0f}%" if total else "no mutants"


def main(names: list[str]) -> int:
    unknown = sorted(set(names) - set(MODULES))
    if unknown:
        print(f"unknown module(s) {', '.join(unknown)}; known: {', '.join(MODULES)}")
        return 2
    equivalents = load_equivalents()
    started = time.monotonic()
    results = {name: run_module(name, equivalents) for name in names or MODULES}
    print("\nmodule          score")
    for name, (killed, total, _) in results.items():
        print(f"{name:<15} {score(killed, total)}")
    print(f"wall time {time.monotonic() - started:.0f} s")
    problems = [problem for _, _, found in results.values() for problem in found]
    for problem in problems:
        print(f"equivalents.txt: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
