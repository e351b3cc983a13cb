"""down: stop the local stack (the API release, then the socket keeper); releases are kept."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping

from pipeline.core import Operation, Option, OptionValue, Plan, Run, Step
from pipeline.local import server
from pipeline.local.releases import Layout
from textbook_api.config import Settings

NAME = "down"
OPTIONS = (Option("environment", "environment to stop (default: ENVIRONMENT)", None, "NAME"),)


def plan(settings: Settings, options: Mapping[str, OptionValue]) -> Plan:
    environment = str(options["environment"] or settings.environment)
    layout = Layout.of(settings.data_dir, environment)

    def stop_api(run: Run) -> None:
        for orphan in server.stop_orphans(layout):
            run.console.print(f"    stopped orphaned release {orphan.release} (pid {orphan.pid})")
        running = server.running(layout)
        if running is None:
            run.console.print("    no API release is running")
            return
        server.stop(running.pid, 30)
        layout.server_file.unlink(missing_ok=True)
        run.console.print(f"    stopped release {running.release} (pid {running.pid})")

    def stop_keeper(run: Run) -> None:
        pid_file = layout.control.with_suffix(".pid")
        try:
            pid = int(pid_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            run.console.print("    no socket keeper is running")
            return
        if server.alive(pid):
            os.kill(pid, signal.SIGTERM)
        pid_file.unlink(missing_ok=True)
        run.console.print(f"    stopped the socket keeper (pid {pid})")

    steps = (
        Step("stop-api", f"SIGTERM the release in {layout.server_file} and any orphaned"
             " release, and wait for them", stop_api),
        Step("stop-keeper", f"SIGTERM the keeper in {layout.control.with_suffix('.pid')}",
             stop_keeper),
    )
    return Plan(NAME, {"environment": environment}, steps, service="stack",
                environment=environment)


OPERATION = Operation(name=NAME, help="Stop the local stack started by up.", options=OPTIONS,
                      plan=plan)
