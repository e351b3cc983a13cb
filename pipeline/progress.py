"""Progress of long steps on stderr: rich's bars on a terminal, plain lines in logs.

On a terminal, rich redraws one bar per phase in place. Anywhere else (CI logs, a pipe) a
redrawn bar would be noise, so each phase prints a plain line every few seconds and one when it
completes. Both go through the run's redactor, like everything else an operation prints.
rich is imported only to draw on a terminal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.progress import TaskID

#: ``update(phase, done, total)``: report that ``done`` of ``total`` items of a phase are done.
Update = Callable[[str, int, int], None]

PLAIN_EVERY_SECONDS = 2.0
_PLAIN_WIDTH = 30


class _Redacted:
    """A text stream that redacts what is written to it (rich writes whole segments)."""

    def __init__(self, stream: TextIO, redact: Callable[[str], str]) -> None:
        self._stream = stream
        self._redact = redact

    def write(self, text: str) -> int:
        return self._stream.write(self._redact(text))

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()


class _PlainLines:
    def __init__(self, stream: TextIO, redact: Callable[[str], str]) -> None:
        self._stream = stream
        self._redact = redact
        self._started = time.perf_counter()
        self._last: dict[str, float] = {}

    def update(self, phase: str, done: int, total: int) -> None:
        now = time.perf_counter()
        final = done >= total
        if not final and now - self._last.get(phase, float("-inf")) < PLAIN_EVERY_SECONDS:
            return
        self._last[phase] = now
        share = done / total if total else 1.0
        bar = "#" * int(share * _PLAIN_WIDTH)
        rate = done / max(now - self._started, 1e-9)
        line = (f"    {phase} [{bar:<{_PLAIN_WIDTH}}] {done}/{total} {share:4.0%}"
                f" {rate:.1f}/s")
        print(self._redact(line), file=self._stream, flush=True)


@contextmanager
def progress_bars(redact: Callable[[str], str],
                  stream: TextIO | None = None) -> Iterator[Update]:
    """Yield an ``update(phase, done, total)`` drawing one bar per phase until the block ends."""
    out = stream or sys.stderr
    if not out.isatty():
        yield _PlainLines(out, redact).update
        return
    from rich.console import Console as RichConsole
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = RichConsole(file=_Redacted(out, redact))  # type: ignore[arg-type]
    columns = (TextColumn("    {task.description}"), BarColumn(), MofNCompleteColumn(),
               TaskProgressColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as bars:
        tasks: dict[str, TaskID] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bars.add_task(phase, total=total)
            bars.update(tasks[phase], completed=done, total=total)

        yield update
