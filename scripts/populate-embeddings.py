#!/usr/bin/env python3
"""Index the textbook into the vector store; same flags and exit codes as
`invoke populate-embeddings`.

Like scripts/_door.sh: PIPELINE_PYTHON picks the interpreter, the default is the project
environment made by `uv sync`; the operation runs from the repository root.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPERATION = "populate-embeddings"


def main() -> int:
    python = os.environ.get("PIPELINE_PYTHON") or str(ROOT / ".venv" / "bin" / "python")
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        print(
            f"error: no Python environment at {python}: run 'uv sync' in {ROOT}"
            " (or set PIPELINE_PYTHON)",
            file=sys.stderr,
        )
        return 2
    os.chdir(ROOT)
    sys.stdout.flush()
    os.execv(python, [python, "-m", "pipeline", OPERATION, *sys.argv[1:]])
    return 1  # not reached: execv replaces this process


if __name__ == "__main__":
    sys.exit(main())
