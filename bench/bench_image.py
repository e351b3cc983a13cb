"""The backend image: multi-stage size against one stage, and a code-only rebuild against cold.

Prints, all measured in this run with the engine commands build-image runs
(`pipeline.operations.build_image.Engine`), on a copy of the build context:
- the runtime image's size against a single-stage build of the same app (the same commands in
  one stage on the builder base: compilers, pip and uv stay in the image) — goal <= 0.6x;
- a rebuild after a code-only change against the cold build (`--no-cache`) — goal <= 15 %.

Prerequisites (checked first): podman and mmdebstrap (base images from Debian packages,
tools/base_images.py, cached under var/), and PyPI reachable from the build (uv downloads
the locked wheels). Run: `uv run --frozen python bench/bench_image.py`.
"""

from __future__ import annotations

import os
import shutil
import subprocess  # nosec B404: the container engine, fixed arguments
import sys
import tempfile
import time
from pathlib import Path

from prerequisites import ROOT, command, module, require, runtime  # noqa: E402

IMAGE_TOOLS = "apt-get install -y podman buildah mmdebstrap uidmap fuse-overlayfs"
require("bench_image", [*runtime(), module("pipeline"), command("podman", IMAGE_TOOLS),
                        command("mmdebstrap", IMAGE_TOOLS)])
sys.path.insert(0, str(ROOT))

from pipeline.operations.build_image import DOCKERFILE, Engine, find_engine  # noqa: E402
from textbook_api.config import Settings  # noqa: E402
from tools import base_images  # noqa: E402

SIZE_GOAL = 0.6
REBUILD_GOAL = 0.15
CONTEXT_FILES = ("pyproject.toml", "uv.lock", ".dockerignore", "backend/pyproject.toml")
# The same app and the same commands as backend/Dockerfile, in one stage.
SINGLE_STAGE = """\
ARG BUILDER_IMAGE=python:3.11-bookworm
FROM ${BUILDER_IMAGE}
ARG UV_VERSION=0.13.9
ENV UV_PYTHON_DOWNLOADS=never UV_NO_CACHE=1 UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 \\
    UV_PROJECT_ENVIRONMENT=/app/.venv PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=secret,id=ca-bundle \\
    if [ -f /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \\
    && python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY backend/pyproject.toml backend/
RUN --mount=type=secret,id=ca-bundle \\
    if [ -f /run/secrets/ca-bundle ]; then export SSL_CERT_FILE=/run/secrets/ca-bundle; fi \\
    && /opt/uv/bin/uv sync --frozen --no-dev --package textbook-api \\
        --no-install-project --no-install-workspace
COPY backend/textbook_api /app/textbook_api
ENV PATH=/app/.venv/bin:$PATH PYTHONPATH=/app DATA_DIR=/app/var PORT=8000
CMD ["python", "-m", "textbook_api"]
"""


def context_copy(folder: Path, dockerfile: str | None = None) -> Path:
    for name in CONTEXT_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, folder / name)
    shutil.copytree(ROOT / "backend" / "textbook_api", folder / "backend" / "textbook_api",
                    ignore=shutil.ignore_patterns("__pycache__"))
    target = folder / DOCKERFILE
    if dockerfile is None:
        shutil.copy2(ROOT / DOCKERFILE, target)
    else:
        target.write_text(dockerfile, encoding="utf-8")
    return folder


def build(engine: Engine, context: Path, ref: str, args: dict[str, str],
          ca_bundle: Path | None, *, cold: bool) -> float:
    argv = engine.build((ref,), args, {"revision": "bench"}, ca_bundle)
    if cold:
        argv.insert(2, "--no-cache")
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=context, capture_output=True, text=True,  # nosec B603
                            check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.stdout[-2000:]}{result.stderr}")
    return elapsed


def size(engine: Engine, ref: str) -> int:
    out = subprocess.run(engine.inspect(ref), capture_output=True, text=True,  # nosec B603
                         check=True).stdout
    return int(out.split()[1])


def main() -> None:
    missing = base_images.missing_tools()
    if missing:
        raise SystemExit(f"needs {', '.join(missing)}: apt-get install -y podman buildah"
                         " skopeo mmdebstrap uidmap fuse-overlayfs")
    engine = find_engine()
    settings = Settings()
    bases = base_images.ensure_all()
    args = dict(bases)
    tag = f"localhost/textbook-api-bench:{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="bench-image-") as scratch:
        multi = context_copy(Path(scratch) / "multi")
        single = context_copy(Path(scratch) / "single", SINGLE_STAGE)
        cold = build(engine, multi, f"{tag}-cold", args, settings.ssl_cert_file, cold=True)
        main_py = multi / "backend" / "textbook_api" / "main.py"
        main_py.write_text(main_py.read_text() + "\n# a code-only change\n")
        rebuild = build(engine, multi, f"{tag}-rebuild", args, settings.ssl_cert_file,
                        cold=False)
        build(engine, single, f"{tag}-single", args, settings.ssl_cert_file, cold=True)
    runtime_size, single_size = size(engine, f"{tag}-rebuild"), size(engine, f"{tag}-single")
    subprocess.run([engine.path, "rmi", f"{tag}-cold", f"{tag}-rebuild", f"{tag}-single"],
                   capture_output=True, check=False)  # nosec B603: tags made above
    size_ratio, rebuild_ratio = runtime_size / single_size, rebuild / cold
    print(f"engine {engine.name}; bases {bases['BUILDER_IMAGE']}, {bases['BASE_IMAGE']}")
    print(f"image size: multi-stage runtime {runtime_size / 1e6:.0f} MB, single stage"
          f" {single_size / 1e6:.0f} MB: {size_ratio:.2f}x (goal <= {SIZE_GOAL}x)"
          f" {'met' if size_ratio <= SIZE_GOAL else 'NOT met'}")
    print(f"build time: cold {cold:.1f}s, rebuild after a code-only change {rebuild:.1f}s:"
          f" {rebuild_ratio:.1%} (goal <= {REBUILD_GOAL:.0%})"
          f" {'met' if rebuild_ratio <= REBUILD_GOAL else 'NOT met'}")


if __name__ == "__main__":
    main()
