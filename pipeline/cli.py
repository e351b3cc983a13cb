"""The command line shared by both doors: `python -m pipeline OPERATION [options]`.

`scripts/<operation>.sh` execs this; the invoke task turns its keyword arguments back into the
same argv, so the two doors cannot disagree on parsing, output or exit codes.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import FrameType

from pydantic import ValidationError

from pipeline.core import Console, Operation, OptionValue, Plan, execute
from pipeline.errors import Cancelled, ExitCode, UsageError
from pipeline.observers import observers_for
from pipeline.observers.base import Notifier, RunInfo
from pipeline.operations import OPERATIONS
from pipeline.recording import Origin, Recorder
from textbook_api.config import Settings
from textbook_api.logs import configure_logging
from textbook_api.redaction import Redactor


def build_parser(operation: Operation) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=operation.name, description=operation.help)
    for option in operation.all_options:
        if isinstance(option.default, bool):
            parser.add_argument(option.flag, action="store_true", help=option.help)
        else:
            parser.add_argument(
                option.flag,
                type=int if isinstance(option.default, int) else str,
                default=option.default,
                metavar=option.metavar,
                help=option.help + (f" (default: {option.default})" if option.default else ""),
            )
    return parser


def to_argv(operation: Operation, values: Mapping[str, OptionValue]) -> list[str]:
    """Keyword arguments (as invoke passes them) → the argv the shell door would get."""
    argv: list[str] = []
    for option in operation.all_options:
        value = values.get(option.name, option.default)
        if value is None or value is False or value == option.default:
            continue
        argv += [option.flag] if value is True else [option.flag, str(value)]
    return argv


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        names = ", ".join(str(e["loc"][0]).upper() for e in error.errors())
        raise UsageError(f"invalid setting(s): {names}") from None


def main(argv: Sequence[str] | None = None) -> int:
    top = argparse.ArgumentParser(prog="pipeline", description=__doc__)
    top.add_argument("operation", choices=sorted(OPERATIONS))
    top.add_argument("args", nargs=argparse.REMAINDER)
    parsed = top.parse_args(argv)
    operation = OPERATIONS[parsed.operation]
    options = vars(build_parser(operation).parse_args(parsed.args))
    try:
        settings = load_settings()
    except UsageError as error:  # names the settings, never their values
        Console(Redactor.from_environment()).error(str(error))
        return ExitCode.USAGE
    console = Console(Redactor.from_settings(settings))
    try:
        plan = operation.plan(settings, options)
    except UsageError as error:
        console.error(str(error))
        return ExitCode.USAGE
    dry_run = bool(options["dry_run"])
    if not dry_run and (refused := _unconfirmed_production(operation, plan, settings, options,
                                                           console)):
        return refused
    recorder = None
    if not (plan.report or dry_run):
        data_dir = settings.data_dir.resolve()
        configure_logging(settings.log_level, console.redact,
                          log_file=data_dir / "logs" / "pipeline.jsonl", stream=False)
        recorder = _recorder(settings, plan, console)
    observers: list[Notifier] = []
    if not plan.report:  # a report is not a run: nobody is told about it
        observers = _observers(settings, operation, plan, console, recorder)
        names = ", ".join(observer.name for observer in observers) or "none"
        plan = replace(plan, context={**plan.context, "notify": names})
    signal.signal(signal.SIGTERM, _cancel)
    return execute(plan, console, dry_run=dry_run, recorder=recorder, observers=observers)


def _unconfirmed_production(
    operation: Operation, plan: Plan, settings: Settings, options: Mapping[str, OptionValue],
    console: Console,
) -> ExitCode | None:
    """Production asks a person first: at a terminal, a question; elsewhere, `--yes`."""
    environment = plan.environment or settings.environment
    if not operation.deploys or environment != "production" or options.get("yes"):
        return None
    if not sys.stdin.isatty():
        console.error(f"{operation.name} on production needs --yes when not run from a terminal")
        return ExitCode.USAGE
    question = f"{operation.name} will change production ({plan.service}, {plan.target}). " \
        "Continue? [y/N] "
    try:
        answer = input(question)
    except EOFError:
        answer = ""
    if answer.strip().lower() in ("y", "yes"):
        return None
    console.error("production not confirmed: nothing was changed")
    return ExitCode.USAGE


def _recorder(settings: Settings, plan: Plan, console: Console) -> Recorder:
    return Recorder(
        settings.sqlalchemy_url,
        operation=plan.operation,
        service=plan.service,
        environment=plan.environment or settings.environment,
        target=plan.target,
        redact=console.redact,
        live=plan.record_live,
        warn=lambda message: console.print(f"warning: {message}"),
    )


def _observers(
    settings: Settings, operation: Operation, plan: Plan, console: Console,
    recorder: Recorder | None,
) -> list[Notifier]:
    """The notifying observers that are on; their failures are printed and recorded."""

    def warn(message: str) -> None:
        console.print(f"warning: {message}")
        if recorder is not None:
            recorder.note(message)

    origin = recorder.origin if recorder is not None else Origin.detect()
    run = RunInfo(
        operation=plan.operation,
        service=plan.service,
        environment=plan.environment or settings.environment,
        target=plan.target,
        url=plan.context.get("url"),
        git_sha=origin.git_sha,
        deploys=operation.deploys,
        job_id=lambda: recorder.job_id if recorder is not None else None,
        redact=console.redact,
        warn=warn,
    )
    return observers_for(settings, run)


def _cancel(signum: int, _frame: FrameType | None) -> None:
    raise Cancelled(signal.Signals(signum).name)
