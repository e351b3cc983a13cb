"""The local deploy target: time to healthy, and failed requests while releases switch.

Prints, all measured in this run on a throw-away stack (its own data directory and port):
- deploy-backend → healthy with warm caches, per step, against the cold first deploy
  (goal: warm <= 10 s); rollback → healthy, per step (goal <= 3 s);
- 20 loopback clients during a redeploy and during a rollback: failed requests (goal 0 of at
  least 1,000 each), throughput against the same clients on a steady stack.

Run: `uv run --frozen python bench/bench_deploy.py`. It checks its prerequisites first.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from prerequisites import BOOTSTRAP, command, module, require, runtime

require("bench_deploy", [*runtime(), module("pipeline"), module("httpx"),
                         command("uv", BOOTSTRAP)])

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import cli  # noqa: E402
from pipeline.local import free_port  # noqa: E402
from pipeline.local.loadgen import Load  # noqa: E402
from textbook_api.config import get_settings  # noqa: E402

STEP = re.compile(r"^==> \[\d+/\d+\] (?P<name>[\w:-]+):")
DONE = re.compile(r"^    ok \((?P<seconds>[\d.]+)s\)")
HEALTHY_AFTER = "switch"


def run(*argv: str) -> tuple[float, list[tuple[str, float]]]:
    """Run an operation; its per-step seconds, and the seconds until traffic reached it."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(list(argv))
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} exited {code}:\n{out.getvalue()}")
    steps: list[tuple[str, float]] = []
    name = ""
    for line in out.getvalue().splitlines():
        if match := STEP.match(line):
            name = match["name"]
        elif match := DONE.match(line):
            steps.append((name, float(match["seconds"])))
    healthy = 0.0
    for name, seconds in steps:
        healthy += seconds
        if name == HEALTHY_AFTER:
            break
    return healthy, steps


def show(label: str, healthy: float, steps: list[tuple[str, float]]) -> None:
    detail = ", ".join(f"{name} {seconds:.2f}" for name, seconds in steps)
    print(f"{label}: healthy after {healthy:.2f}s ({detail})")


def load_during(url: str, *argv: str) -> tuple[int, int, float]:
    with Load(url, clients=20) as load:
        started = time.perf_counter()
        time.sleep(1)
        run(*argv)
        time.sleep(1)
    seconds = time.perf_counter() - started
    return load.tally.ok, load.tally.failed, (load.tally.ok + load.tally.failed) / seconds


def main() -> None:
    port = str(free_port())
    os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="bench-deploy-")
    os.environ.pop("DATABASE_URL", None)
    get_settings.cache_clear()
    url = f"http://127.0.0.1:{port}/health"
    try:
        cold, cold_steps = run("deploy-backend", "--port", port)
        show("cold deploy-backend", cold, cold_steps)
        warm, warm_steps = run("deploy-backend", "--port", port)
        show("warm deploy-backend", warm, warm_steps)
        print(f"  warm / cold = {warm / cold:.2f} (goal: warm <= 10 s)")
        back, back_steps = run("rollback", "--port", port)
        show("rollback", back, back_steps)
        print(f"  rollback / warm deploy = {back / warm:.2f} (goal: rollback <= 3 s)")

        with Load(url, clients=20) as steady:
            time.sleep(5)
        baseline = (steady.tally.ok + steady.tally.failed) / 5
        print(f"steady: {steady.tally.ok} ok, {steady.tally.failed} failed, {baseline:.0f} req/s")
        for label, argv in (("redeploy", ("deploy-backend",)), ("rollback", ("rollback",))):
            ok, failed, rate = load_during(url, *argv, "--port", port)
            print(f"during {label}: {ok} ok, {failed} failed (goal 0 of >= 1,000),"
                  f" {rate:.0f} req/s = {rate / baseline:.2f} x steady")
    finally:
        with contextlib.redirect_stdout(io.StringIO()):
            cli.main(["down"])


if __name__ == "__main__":
    main()
