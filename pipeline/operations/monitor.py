"""monitor: poll the configured health URLs and record what they answered.

The URLs are the `health_url` settings of the deployment configurations (the deploy engine
saves them; `PUT /api/v1/configurations/...` can too). Each check is an event of the monitor's
job; a service that does not answer 2xx within the timeout is down, and the run exits 1.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from pipeline.audit import audit_trail, table
from pipeline.core import Operation, Option, OptionValue, Plan, Run, Step
from pipeline.database import Database
from pipeline.errors import OperationFailed, UsageError
from textbook_api.config import Settings
from textbook_api.redaction import Redactor

NAME = "monitor"

OPTIONS = (
    Option("once", "run one pass and exit (non-zero when a service is down)", False),
    Option("interval", "seconds between passes when not --once", 30, "SECONDS"),
    Option("timeout", "seconds each health check may take", 5, "SECONDS"),
)


@dataclass(frozen=True)
class Probe:
    service: str
    environment: str
    url: str


@dataclass(frozen=True)
class Outcome:
    probe: Probe
    up: bool
    detail: str
    milliseconds: int


def _probes(database: Database, redact: Redactor) -> list[Probe]:
    with audit_trail(database, NAME, redact) as deployments:
        return [
            Probe(c.service, c.environment, str(c.settings["health_url"]))
            for c in deployments.configurations()
            if c.settings.get("health_url")
        ]


def check(probe: Probe, timeout: float) -> Outcome:
    started = time.perf_counter()
    try:
        response = httpx.get(probe.url, timeout=timeout)
        up, detail = response.is_success, f"HTTP {response.status_code}"
    except httpx.HTTPError as error:
        up, detail = False, f"{type(error).__name__}: {error}"
    return Outcome(probe, up, detail, int((time.perf_counter() - started) * 1000))


def _pass(run: Run, database: Database, timeout: float) -> list[Outcome]:
    probes = _probes(database, run.console.redact)
    if not probes:
        raise OperationFailed("no deployment configuration has a health_url to check")
    outcomes = [check(probe, timeout) for probe in probes]
    rows = []
    for outcome in outcomes:
        probe = outcome.probe
        state = "up" if outcome.up else "down"
        rows.append([probe.service, probe.environment, state, f"{outcome.milliseconds}ms",
                     outcome.detail, probe.url])
        if run.recorder is not None:
            run.recorder.note(
                f"{probe.service}/{probe.environment} is {state}: {outcome.detail}",
                step="check", service=probe.service, environment=probe.environment,
                url=probe.url, up=outcome.up, milliseconds=outcome.milliseconds,
            )
    for line in table(["SERVICE", "ENV", "STATE", "TOOK", "ANSWER", "URL"], rows):
        run.console.print(line)
    return outcomes


def plan(settings: Settings, options: Mapping[str, OptionValue]) -> Plan:
    database = Database.from_settings(settings)
    timeout, interval = int(options["timeout"] or 0), int(options["interval"] or 0)
    if timeout < 1 or interval < 1:
        raise UsageError("--timeout and --interval must be at least 1 second")

    def poll(run: Run) -> None:
        while True:
            down = [o for o in _pass(run, database, timeout) if not o.up]
            if options["once"]:
                if down:
                    names = ", ".join(f"{o.probe.service}/{o.probe.environment}" for o in down)
                    raise OperationFailed(f"down: {names}")
                return
            time.sleep(interval)

    describe = "check every health_url once" if options["once"] else (
        f"check every health_url each {interval}s until stopped"
    )
    context = {"environment": settings.environment, "database": database.display()}
    return Plan(NAME, context, (Step("check", describe, poll),), service="monitor")


OPERATION = Operation(
    name=NAME,
    help="Poll the configured health URLs, record each answer; --once exits 1 if one is down.",
    options=OPTIONS,
    plan=plan,
)
