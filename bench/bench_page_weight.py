"""The home page's weight on the wire from the local target, compressed against uncompressed.

Serves the built site (`frontend/build`) from the API as the local target does (a real uvicorn
on a free loopback port, `SITE_DIR` pointing at the build), loads `/` in headless Chromium until
the network is idle, and sums every request's headers and body: once with `Accept-Encoding:
identity` (what the site cost before compression: the same bytes), once as Chromium asks.
Prints both totals, per resource type, and their ratio (goal: compressed <= 0.4 of the whole).

Run: `uv run --frozen python bench/bench_page_weight.py` after `uv run --frozen invoke
build-frontend` (needs `uv sync` and the frontend's `npm ci`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

from prerequisites import ROOT, command, file, require, runtime

FRONTEND = ROOT / "frontend"
BUILD = FRONTEND / "build"
GOAL = 0.4

require("bench_page_weight", [
    *runtime(),
    command("node", "install Node.js 20"),
    file(BUILD / "index.html", "uv run --frozen invoke build-frontend"),
    file(FRONTEND / "node_modules" / "playwright-core", "npm ci --prefix frontend"),
])

from pipeline.local import free_port  # noqa: E402


def wait_healthy(base: str, server: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the API exited with {server.returncode} before answering /health")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"the API did not answer {base}/health within {timeout:.0f} s")


def kilobytes(size: int) -> str:
    return f"{size / 1024:,.1f} KB"


def main() -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-page-weight-") as data_dir:
        env = {**os.environ, "SITE_DIR": str(BUILD), "DATA_DIR": data_dir}
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "textbook_api.main:app",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=env,
        )
        try:
            wait_healthy(base, server)
            measured = subprocess.run(
                ["node", str(FRONTEND / "e2e" / "page-weight.mjs"), f"{base}/"],
                check=True, capture_output=True, text=True,
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    result = json.loads(measured.stdout)
    before, after = result["uncompressed"], result["compressed"]
    print(f"home page from the local target: {before['requests']} requests")
    for label, weight in (("uncompressed", before), ("compressed", after)):
        types = ", ".join(
            f"{kind} {kilobytes(size)}" for kind, size in sorted(weight["byType"].items())
        )
        print(f"  {label:>12}: {kilobytes(weight['bytes']):>10}  ({types}; "
              f"encodings: {', '.join(weight['encodings'])})")
    ratio = after["bytes"] / before["bytes"]
    verdict = "meets" if ratio <= GOAL else "misses"
    print(f"  ratio compressed / uncompressed: {ratio:.2f} ({verdict} the goal <= {GOAL})")


if __name__ == "__main__":
    main()
