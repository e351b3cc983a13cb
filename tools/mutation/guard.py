"""A pytest plugin loaded into every test run of `nox -s mutation` (`-p guard`).

The uv workspace installs our packages in editable mode: a `.pth` file puts backend/ and the
repository root on sys.path, so a test could import the original module instead of mutmut's
mutated copy, and every mutant would survive unseen. This refuses the run (a usage error, which
mutmut reports as a failed clean run) unless the module under mutation was imported from the
copy under the current directory (mutmut runs pytest inside mutants/) and carries mutmut's
trampoline.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest


def pytest_collection_finish(session: pytest.Session) -> None:
    name = os.environ["MUTATION_MODULE"]
    module = importlib.import_module(name)
    path = Path(module.__file__ or "").resolve()
    copy = Path.cwd().resolve()
    if copy not in path.parents or not hasattr(module, "_mutmut_mutated"):
        raise pytest.UsageError(f"{name} was imported from {path}, not mutmut's copy in {copy}")
