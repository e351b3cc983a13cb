"""The command line shared by both doors: `python -m pipeline OPERATION [options]`.

`scripts/<operation>.sh` execs this; the invoke task turns its keyword arguments back into the
same argv, so the two doors cannot disagree on parsing, output or exit codes.
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Mapping, Sequence
from types import FrameType

from pydantic import ValidationError

from pipeline.core import Console, Operation, OptionValue, Plan, execute
from pipeline.errors import Cancelled, ExitCode, UsageError
from pipeline.operations import OPERATIONS
from pipeline.recording import Recorder
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
    recorder = None
    if not (plan.report or dry_run):
        data_dir = settings.data_dir.resolve()
        configure_logging(settings.log_level, console.redact,
                          log_file=data_dir / "logs" / "pipeline.jsonl", stream=False)
        recorder = _recorder(settings, plan, console)
    signal.signal(signal.SIGTERM, _cancel)
    return execute(plan, console, dry_run=dry_run, recorder=recorder)


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


def _cancel(signum: int, _frame: FrameType | None) -> None:
    raise Cancelled(signal.Signals(signum).name)
