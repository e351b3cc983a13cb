"""The command line shared by both doors: `python -m pipeline OPERATION [options]`.

`scripts/<operation>.sh` execs this; the invoke task turns its keyword arguments back into the
same argv, so the two doors cannot disagree on parsing, output or exit codes.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

from pydantic import ValidationError

from pipeline.core import Console, Operation, OptionValue, execute
from pipeline.errors import ExitCode, UsageError
from pipeline.operations import OPERATIONS
from pipeline.redact import Redactor
from textbook_api.config import Settings


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
    console = Console(Redactor.from_environment())
    try:
        plan = operation.plan(load_settings(), options)
    except UsageError as error:
        console.error(str(error))
        return ExitCode.USAGE
    return execute(plan, console, dry_run=bool(options["dry_run"]))
