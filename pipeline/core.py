"""The operation contract: validated settings + options → a plan of steps → a run.

An operation never acts while planning, so `--dry-run` prints exactly the steps a real run takes.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from pathlib import Path

from pipeline.artifacts import digest
from pipeline.errors import Cancelled, ExitCode, PipelineError
from pipeline.recording import Recorder
from textbook_api.config import Settings
from textbook_api.redaction import Redactor

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
YES = Option("yes", "skip the confirmation that --environment production asks for", False)


class Observer(Protocol):
    """Hears a run's start, each step and its end: the database record, Slack, GitHub."""

    def started(self) -> None: ...

    def step_started(self, step: str, describe: str) -> None: ...

    def step_finished(self, step: str, seconds: float, error: str | None = None) -> None: ...

    def finished(self, state: str, error: str | None = None) -> None: ...


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
    recorder: Recorder | None = None
    resources: ExitStack = field(default_factory=ExitStack)
    _undo: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def on_failure(self, description: str, undo: Callable[[], None]) -> None:
        self._undo.append((description, undo))

    def artifact(self, kind: str, path: Path) -> None:
        """Print and record an artifact: a file or a folder, with its sha256 and size."""
        found = digest(path)
        self.console.print(
            f"    artifact {kind}: {path} ({found.size_bytes} bytes, sha256 {found.sha256})"
        )
        if self.recorder is not None:
            self.recorder.artifact(kind, path.as_uri(), found.sha256, found.size_bytes)

    def reference(self, kind: str, uri: str, **identity: str) -> None:
        """Print and record something that lives elsewhere (a remote deployment, an image) by
        its uri; its sha256 is that of its identity fields, so the record can be checked."""
        text = json.dumps({"uri": uri, **identity}, sort_keys=True).encode()
        sha256 = hashlib.sha256(text).hexdigest()
        details = ", ".join(f"{key} {value}" for key, value in identity.items())
        self.console.print(f"    artifact {kind}: {uri}" + (f" ({details})" if details else ""))
        if self.recorder is not None:
            self.recorder.artifact(kind, uri, sha256, len(text))

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
    # The audit trail's (service, target, environment) for this run.
    service: str = "pipeline"
    target: str = "local"
    environment: str | None = None  # None: the ENVIRONMENT setting
    # A report only reads: it is neither narrated step by step nor recorded.
    report: bool = False
    # False: write the record only when the run ends (an operation that rewrites the very
    # database the record lives in, such as run-migrations, would otherwise undo it).
    record_live: bool = True

    def render(self) -> list[str]:
        header = ", ".join(f"{key} {value}" for key, value in self.context.items())
        width = max((len(step.name) for step in self.steps), default=0)
        lines = [f"{self.operation}: plan ({header})"]
        digits = len(str(len(self.steps)))
        lines += [
            f"  {str(index).rjust(digits)}. {step.name.ljust(width)}  {step.describe}"
            for index, step in enumerate(self.steps, start=1)
        ]
        return lines


@dataclass(frozen=True)
class Operation:
    name: str
    help: str
    options: tuple[Option, ...]
    plan: Callable[[Settings, Mapping[str, OptionValue]], Plan]
    # It changes what an environment serves: production asks first (or takes --yes), and the
    # GitHub observer records it as a deployment.
    deploys: bool = False

    @property
    def all_options(self) -> tuple[Option, ...]:
        return (*self.options, *((YES,) if self.deploys else ()), DRY_RUN)

    def defaults(self, **overrides: OptionValue) -> dict[str, OptionValue]:
        """Its options as a run with no flags would see them (for composing operations)."""
        return {**{option.name: option.default for option in self.all_options}, **overrides}


def describe_error(error: BaseException) -> str:
    if isinstance(error, PipelineError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _report(plan: Plan, console: Console) -> ExitCode:
    run = Run(console)
    with run.resources:
        for step in plan.steps:
            try:
                step.action(run)
            except PipelineError as error:
                console.error(str(error))
                return error.exit_code
    return ExitCode.OK


def execute(
    plan: Plan,
    console: Console,
    *,
    dry_run: bool,
    recorder: Recorder | None = None,
    observers: Sequence[Observer] = (),
) -> ExitCode:
    """Run the plan, telling the recorder first and then each observer about every stage."""
    if plan.report and not dry_run:
        return _report(plan, console)
    for line in plan.render():
        console.print(line)
    if dry_run:
        console.print("dry run: nothing was changed")
        return ExitCode.OK
    run = Run(console, recorder)
    # The recorder goes first: the others may name the job it has just created.
    watchers: list[Observer] = [*([recorder] if recorder is not None else []), *observers]
    for watcher in watchers:
        watcher.started()
    state, error_text, code = "succeeded", None, ExitCode.OK
    with run.resources:
        for index, step in enumerate(plan.steps, start=1):
            console.print(f"==> [{index}/{len(plan.steps)}] {step.name}: {step.describe}")
            for watcher in watchers:
                watcher.step_started(step.name, step.describe)
            started = time.perf_counter()
            try:
                step.action(run)
            except (Exception, Cancelled, KeyboardInterrupt) as error:
                cancelled = isinstance(error, Cancelled | KeyboardInterrupt)
                error_text = "cancelled" if cancelled else f"{step.name}: {describe_error(error)}"
                console.error(error_text)
                run.roll_back()  # first, so that the failure's record outlives any restore
                for watcher in watchers:
                    watcher.step_finished(step.name, time.perf_counter() - started, error_text)
                state = "cancelled" if cancelled else "failed"
                code = error.exit_code if isinstance(error, PipelineError) else ExitCode.FAILED
                break
            elapsed = time.perf_counter() - started
            for watcher in watchers:
                watcher.step_finished(step.name, elapsed)
            console.print(f"    ok ({elapsed:.2f}s)")
    for watcher in watchers:
        watcher.finished(state, error_text)
    if recorder is not None and recorder.job_id is not None:
        console.print(f"{plan.operation}: recorded as job {recorder.job_id}")
    if code == ExitCode.OK:
        console.print(f"{plan.operation}: done")
    return code


def prefixed(operation: str, steps: Iterable[Step]) -> list[Step]:
    """Another operation's steps, named `<operation>:<step>`, to run inside this plan."""
    return [Step(f"{operation}:{s.name}", s.describe, s.action) for s in steps]


def composed(operation: Operation, settings: Settings, **options: OptionValue) -> list[Step]:
    """Another operation's steps, prefixed with its name, to run inside this plan."""
    return prefixed(operation.name, operation.plan(settings, operation.defaults(**options)).steps)
