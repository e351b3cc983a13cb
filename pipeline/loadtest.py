"""A headless Locust run against a stack, checked against the committed thresholds.

``python -m pipeline.loadtest --host URL`` (door: ``nox -s perf``, which brings up a local stack
when no host is given) runs ``perf/locustfile.py`` and writes Locust's CSV and HTML reports under
``var/artifacts/perf/``, then checks its stats CSV against ``perf/thresholds.toml``: a p95 per
endpoint, the error rate and the minimum total requests per second. Every endpoint with a
threshold must have been requested, and every endpoint requested must have a threshold, so the
file and the user mix cannot drift apart unnoticed. A breach fails (exit 1) with the numbers;
a bad thresholds file or option is a usage error (exit 2). The stats CSV is Locust's last
periodic write (once a second), so it may miss the final second of requests.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import subprocess  # nosec B404: runs locust with an argv list, no shell
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "perf" / "locustfile.py"
THRESHOLDS = ROOT / "perf" / "thresholds.toml"
REPORTS = ROOT / "var" / "artifacts" / "perf"


class ThresholdsError(ValueError):
    """The thresholds file is missing, malformed or names a bad value (the message says which)."""


@dataclass(frozen=True)
class Thresholds:
    p95_ms: dict[str, float]  # "METHOD /name" -> milliseconds
    max_error_rate: float  # failures / requests, 0 to 1
    min_rps: float


@dataclass(frozen=True)
class EndpointStats:
    name: str  # "METHOD /name", or "Aggregated"
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    rps: float


def _number(table: dict[str, object], key: str, where: str) -> float:
    value = table.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ThresholdsError(f"{where}: `{key}` must be a number >= 0, not {value!r}")
    return float(value)


def load_thresholds(path: Path = THRESHOLDS) -> Thresholds:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ThresholdsError(f"{path}: {error}") from None
    total = data.get("total")
    p95 = data.get("p95_ms")
    if not isinstance(total, dict) or not isinstance(p95, dict) or not p95:
        raise ThresholdsError(f"{path}: needs a [total] table and a non-empty [p95_ms] table")
    rate = _number(total, "max_error_rate", f"{path} [total]")
    if rate > 1:
        raise ThresholdsError(f"{path} [total]: `max_error_rate` is a fraction (0 to 1)")
    return Thresholds(
        p95_ms={name: _number(p95, name, f"{path} [p95_ms]") for name in p95},
        max_error_rate=rate,
        min_rps=_number(total, "min_rps", f"{path} [total]"),
    )


def _ms(value: str) -> float:
    return math.nan if value in ("", "N/A") else float(value)


def read_stats(path: Path) -> tuple[dict[str, EndpointStats], EndpointStats]:
    """Locust's ``<prefix>_stats.csv``: the rows per endpoint, and the aggregated row."""
    endpoints: dict[str, EndpointStats] = {}
    aggregated: EndpointStats | None = None
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            name = f"{row['Type']} {row['Name']}".strip()
            stats = EndpointStats(name, int(row["Request Count"]), int(row["Failure Count"]),
                                  _ms(row["50%"]), _ms(row["95%"]), float(row["Requests/s"]))
            if row["Name"] == "Aggregated":
                aggregated = stats
            else:
                endpoints[name] = stats
    if aggregated is None:
        raise ValueError(f"{path}: no Aggregated row: not a Locust stats file")
    return endpoints, aggregated


def breaches(endpoints: dict[str, EndpointStats], total: EndpointStats,
             thresholds: Thresholds) -> list[str]:
    """Every way the run missed its thresholds, with the numbers; empty when it met them."""
    found = []
    for name, limit in thresholds.p95_ms.items():
        stats = endpoints.get(name)
        if stats is None or stats.requests == 0:
            found.append(f"{name}: no requests recorded (the user mix no longer calls it?)")
        elif not stats.p95_ms <= limit:
            found.append(f"{name}: p95 {stats.p95_ms:.0f} ms > {limit:.0f} ms")
    found += [f"{name}: requested but has no p95 threshold in {THRESHOLDS.name}"
              for name in endpoints if name not in thresholds.p95_ms]
    rate = total.failures / total.requests if total.requests else 1.0
    if total.requests == 0 or rate > thresholds.max_error_rate:
        found.append(f"errors: {total.failures} of {total.requests} requests ({rate:.2%}) > "
                     f"{thresholds.max_error_rate:.2%}")
    if total.rps < thresholds.min_rps:
        found.append(f"throughput: {total.rps:.1f} requests/s < {thresholds.min_rps:g}")
    return found


def summary(endpoints: dict[str, EndpointStats], total: EndpointStats) -> str:
    lines = [f"{'endpoint':24s} {'requests':>8s} {'failures':>8s} {'req/s':>7s} "
             f"{'p50 ms':>7s} {'p95 ms':>7s}"]
    for stats in [*endpoints.values(), total]:
        lines.append(f"{stats.name:24s} {stats.requests:8d} {stats.failures:8d} "
                     f"{stats.rps:7.1f} {stats.p50_ms:7.0f} {stats.p95_ms:7.0f}")
    return "\n".join(lines)


def run_locust(host: str, users: int, spawn_rate: float, run_time: str, prefix: Path) -> int:
    prefix.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        "locust", "-f", str(LOCUSTFILE), "--headless", "--host", host,
        "--users", str(users), "--spawn-rate", str(spawn_rate), "--run-time", run_time,
        "--csv", str(prefix), "--html", f"{prefix}.html", "--only-summary",
        # Failed requests are judged against the thresholds below, not by Locust's exit code.
        "--exit-code-on-error", "0",
    ]
    return subprocess.run(argv, check=False).returncode  # nosec B603: argv list, no shell


def parser() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(prog="python -m pipeline.loadtest", description=__doc__,
                                      formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("--host", default=os.environ.get("PERF_HOST") or None,
                         help="base URL of the stack under test (default: PERF_HOST)")
    options.add_argument("--users", type=int, default=10, help="concurrent users (default 10)")
    options.add_argument("--spawn-rate", type=float, default=10.0,
                         help="users started per second (default 10)")
    options.add_argument("--run-time", default="30s", help="how long, e.g. 30s, 2m (default 30s)")
    options.add_argument("--thresholds", type=Path, default=THRESHOLDS,
                         help=f"thresholds file (default {THRESHOLDS.relative_to(ROOT)})")
    options.add_argument("--reports", type=Path, default=REPORTS,
                         help=f"CSV and HTML reports (default {REPORTS.relative_to(ROOT)})")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.host:
        print("loadtest: no host: pass --host URL or set PERF_HOST", file=sys.stderr)
        return 2
    if args.users < 1 or args.spawn_rate <= 0:
        print("loadtest: --users must be >= 1 and --spawn-rate > 0", file=sys.stderr)
        return 2
    try:
        thresholds = load_thresholds(args.thresholds)
    except ThresholdsError as error:
        print(f"loadtest: {error}", file=sys.stderr)
        return 2
    prefix = args.reports / f"locust-{args.users}u"
    stats_csv = Path(f"{prefix}_stats.csv")
    stats_csv.unlink(missing_ok=True)  # never judge a previous run's numbers
    code = run_locust(args.host, args.users, args.spawn_rate, args.run_time, prefix)
    if code != 0 or not stats_csv.is_file():
        print(f"loadtest: locust exited {code}"
              f"{'' if stats_csv.is_file() else ' and wrote no stats'}", file=sys.stderr)
        return 1
    endpoints, total = read_stats(stats_csv)
    print(summary(endpoints, total))
    print(f"reports: {stats_csv} and {prefix}.html")
    found = breaches(endpoints, total, thresholds)
    for line in found:
        print(f"threshold breached: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
