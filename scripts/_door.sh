# Sourced by every scripts/<operation>.sh: run the operation through the pipeline's one CLI.
# PIPELINE_PYTHON picks the interpreter; the default is the project environment made by `uv sync`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PIPELINE_PYTHON:-$root/.venv/bin/python}"
if [ ! -x "$python" ]; then
    echo "error: no Python environment at $python: run 'uv sync' in $root (or set PIPELINE_PYTHON)" >&2
    exit 2
fi
run_operation() {
    cd "$root"
    exec "$python" -m pipeline "$@"
}
