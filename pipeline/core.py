"""The operation contract: validated settings + options → a plan of steps → a run.

An operation never acts while planning, so `--dry-run` prints exactly the steps a real run takes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, TextIO

from pipeline.errors import ExitCode, PipelineError
from pipeline.redact import Redactor
from textbook_api.config import Settings

OptionValue = str | int | bool | None


@dataclass(frozen=True)
class Option:
    """One command-line option, shared by the invoke task and the shell script."""

    name: str
    help: str
    default: OptionValue = None
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


DRY_RUN = Option("dry_run", "print the plan (secrets masked) and change nothing", False)


class Console:
    """Redacted output: progress on stdout, errors on stderr."""

    def __init__(
        self, redactor: Redactor, out: TextIO | None = None, err: TextIO | None = None
    ) -> None:
        self.redact = redactor
        self._out = out or sys.stdout
        self._err = err or sys.stderr

    def print(self, text: str = "") -> None:
        print(self.redact(text), file=self._out, flush=True)

    def error(self, text: str) -> None:
        print(self.redact(f"error: {text}"), file=self._err, flush=True)


@dataclass
class Run:
    """What steps share while a plan runs: resources to release and undo actions on failure."""

    console: Console
    resources: ExitStack = field(default_factory=ExitStack)
    state: dict[str, Any] = field(default_factory=dict)
    _undo: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def on_failure(self, description: str, undo: Callable[[], None]) -> None:
        self._undo.append((description, undo))

    def roll_back(self) -> None:
        for description, undo in reversed(self._undo):
            self.console.print(f"    rolling back: {description}")
            undo()


@dataclass(frozen=True)
class Step:
    name: str
    describe: str
    action: Callable[[Run], None]


@dataclass(frozen=True)
class Plan:
    operation: str
    context: Mapping[str, str]
    steps: tuple[Step, ...]

    def render(self) -> list[str]:
        header = ", ".join(f"{key} {value}" for key, value in self.context.items())
        width = max((len(step.name) for step in self.steps), default=0)
        lines = [f"{self.operation}: plan ({header})"]
        lines += [
            f"  {index}. {step.name.ljust(width)}  {step.describe}"
            for index, step in enumerate(self.steps, start=1)
        ]
        return lines


@dataclass(frozen=True)
class Operation:
    name: str
    help: str
    options: tuple[Option, ...]
    plan: Callable[[Settings, Mapping[str, OptionValue]], Plan]

    @property
    def all_options(self) -> tuple[Option, ...]:
        return (*self.options, DRY_RUN)


def describe_error(error: BaseException) -> str:
    if isinstance(error, PipelineError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def execute(plan: Plan, console: Console, *, dry_run: bool) -> ExitCode:
    for line in plan.render():
        console.print(line)
    if dry_run:
        console.print("dry run: nothing was changed")
        return ExitCode.OK
    run = Run(console)
    with run.resources:
        for index, step in enumerate(plan.steps, start=1):
            console.print(f"==> [{index}/{len(plan.steps)}] {step.name}: {step.describe}")
            started = time.perf_counter()
            try:
                step.action(run)
            except Exception as error:  # any failed step rolls back, whatever raised
                console.error(f"{step.name}: {describe_error(error)}")
                run.roll_back()
                return error.exit_code if isinstance(error, PipelineError) else ExitCode.FAILED
            console.print(f"    ok ({time.perf_counter() - started:.2f}s)")
    console.print(f"{plan.operation}: done")
    return ExitCode.OK
