"""invoke tasks: one door into each pipeline operation (the other door is scripts/).

Each task is generated from the operation's option list, so the flags, help, output and exit
codes are the shell script's own. `invoke --list` shows them; `invoke --help TASK` their options.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import Task

from pipeline import cli
from pipeline.core import Operation
from pipeline.operations import OPERATIONS

ROOT = Path(__file__).resolve().parent


def door(operation: Operation) -> Task[Any]:
    def body(c: Context, **options: Any) -> None:
        os.chdir(ROOT)  # as scripts/_door.sh does: relative settings resolve from the repo root
        code = cli.main([operation.name, *cli.to_argv(operation, options)])
        if code:
            raise Exit(code=code)

    parameters = [inspect.Parameter("c", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    parameters += [
        inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, default=option.default)
        for option in operation.all_options
    ]
    body.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    body.__name__ = operation.name.replace("-", "_")
    body.__doc__ = operation.help
    return Task(
        body,
        name=operation.name,
        help={option.name: option.help for option in operation.all_options},
        auto_shortflags=False,
    )


namespace = Collection(*(door(operation) for operation in OPERATIONS.values()))
