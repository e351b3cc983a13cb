"""The load test's threshold check on saved Locust stats (tests/fixtures/perf/).

`locust-10u_stats.csv` and `locust-50u_stats.csv` are the stats files of two `nox -s perf` runs
on this machine (10 and 50 users, 30 s); `thresholds.toml` beside them is a copy of the shape of
perf/thresholds.toml with its own numbers, so retuning the committed file leaves these alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT
from pipeline.local import free_port
from pipeline.loadtest import (
    THRESHOLDS,
    EndpointStats,
    Thresholds,
    ThresholdsError,
    breaches,
    load_thresholds,
    main,
    read_stats,
)

FIXTURES = ROOT / "tests" / "fixtures" / "perf"
ENDPOINTS = {"GET /", "GET /docs/[page]", "POST /api/v1/query", "GET /api/v1/jobs", "GET /ready"}


def test_locust_stats_are_read_per_endpoint_and_in_total() -> None:
    endpoints, total = read_stats(FIXTURES / "locust-10u_stats.csv")
    assert set(endpoints) == ENDPOINTS
    assert total.name == "Aggregated"
    assert total.requests == sum(stats.requests for stats in endpoints.values())
    assert all(stats.p50_ms <= stats.p95_ms for stats in endpoints.values())


def test_a_run_within_the_thresholds_passes() -> None:
    endpoints, total = read_stats(FIXTURES / "locust-10u_stats.csv")
    assert breaches(endpoints, total, load_thresholds(FIXTURES / "thresholds.toml")) == []


def test_a_breaching_run_fails_with_its_numbers() -> None:
    endpoints, total = read_stats(FIXTURES / "locust-50u_stats.csv")
    found = breaches(endpoints, total, load_thresholds(FIXTURES / "thresholds.toml"))
    query = endpoints["POST /api/v1/query"]
    assert f"POST /api/v1/query: p95 {query.p95_ms:.0f} ms > 500 ms" in found
    assert all(line.split(":")[0] in ENDPOINTS | {"errors", "throughput"} for line in found)


def stats(name: str, requests: int = 100, failures: int = 0, p95: float = 50.0,
          rps: float = 10.0) -> EndpointStats:
    return EndpointStats(name, requests, failures, p95 / 2, p95, rps)


def test_errors_throughput_and_drift_between_the_mix_and_the_file_are_breaches() -> None:
    thresholds = Thresholds({"GET /": 100.0, "GET /ready": 100.0}, 0.0, 20.0)
    endpoints = {"GET /": stats("GET /", failures=2), "GET /health": stats("GET /health")}
    total = stats("Aggregated", requests=200, failures=2, rps=8.0)
    assert breaches(endpoints, total, thresholds) == [
        "GET /ready: no requests recorded (the user mix no longer calls it?)",
        "GET /health: requested but has no p95 threshold in thresholds.toml",
        "errors: 2 of 200 requests (1.00%) > 0.00%",
        "throughput: 8.0 requests/s < 20",
    ]


def test_a_run_without_requests_is_not_a_pass() -> None:
    thresholds = Thresholds({"GET /": 100.0}, 0.0, 0.0)
    empty = EndpointStats("GET /", 0, 0, float("nan"), float("nan"), 0.0)
    found = breaches({"GET /": empty}, stats("Aggregated", requests=0, rps=0.0), thresholds)
    assert "GET /: no requests recorded (the user mix no longer calls it?)" in found
    assert "errors: 0 of 0 requests (100.00%) > 0.00%" in found


def test_the_committed_thresholds_cover_the_user_mix() -> None:
    assert set(load_thresholds(THRESHOLDS).p95_ms) == ENDPOINTS


@pytest.mark.parametrize(("text", "message"), [
    ('[total]\nmax_error_rate = 0\nmin_rps = 5\n', "non-empty [p95_ms]"),
    ('[total]\nmax_error_rate = 2\nmin_rps = 5\n[p95_ms]\n"GET /" = 1\n', "is a fraction"),
    ('[total]\nmax_error_rate = 0\nmin_rps = 5\n[p95_ms]\n"GET /" = "fast"\n',
     "`GET /` must be a number >= 0, not 'fast'"),
    ('[total]\nmax_error_rate = 0\n[p95_ms]\n"GET /" = 1\n', "`min_rps` must be a number"),
    ("[total\n", "thresholds.toml"),
])
def test_a_bad_thresholds_file_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "thresholds.toml"
    path.write_text(text)
    with pytest.raises(ThresholdsError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_thresholds(path)


def test_usage_errors_exit_2_before_any_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--host", "http://127.0.0.1:9", "--thresholds", str(tmp_path / "none")]) == 2
    assert "none" in capsys.readouterr().err
    assert main(["--host", "http://127.0.0.1:9", "--users", "0"]) == 2
    assert not list(tmp_path.iterdir())


@pytest.mark.integration
def test_a_real_run_against_a_stack_that_is_down_breaches_the_error_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = f"http://127.0.0.1:{free_port()}"
    # 10 s: Locust starts its run-time clock before its start-up, which a busy machine stretches.
    code = main(["--host", host, "--users", "2", "--spawn-rate", "2", "--run-time", "10s",
                 "--reports", str(tmp_path)])
    assert code == 1
    assert (tmp_path / "locust-2u.html").is_file()
    endpoints, total = read_stats(tmp_path / "locust-2u_stats.csv")
    assert total.requests > 0 and total.failures == total.requests
    assert f"errors: {total.failures} of {total.requests} requests (100.00%)" in \
        capsys.readouterr().err
