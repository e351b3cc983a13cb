"""Structured logging, configured once per process: JSON lines, secrets masked."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from pythonjsonlogger.json import JsonEncoder, JsonFormatter

from textbook_api.redaction import Redactor, redact_data

# The fields every line starts with, under the names the log has always used; attributes
# passed with `extra=` follow them.
_FIELDS = ("levelname", "name", "message")
_RENAMED = {"levelname": "level", "name": "logger", "exc_info": "exception"}


class RedactingJsonFormatter(JsonFormatter):
    """python-json-logger's formatter, every string of the entry masked before it is
    serialised (masking the serialised line would miss a secret that JSON escapes)."""

    def __init__(self, redact: Redactor) -> None:
        encoder = JsonEncoder()
        super().__init__(
            _FIELDS,
            rename_fields=_RENAMED,
            timestamp="time",
            # Values JSON has no type for (paths, objects): written as the library writes
            # them, then masked like the rest.
            json_default=lambda value: redact_data(encoder.default(value), redact),
        )
        self.redact = redact

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        log_data["level"] = str(log_data["level"]).lower()
        masked: dict[str, Any] = redact_data(log_data, self.redact)
        return masked


def configure_logging(
    level: str, redact: Redactor, *, log_file: Path | None = None, stream: bool = True
) -> None:
    formatter = RedactingJsonFormatter(redact)
    handlers: list[logging.Handler] = []
    if stream:
        handlers.append(logging.StreamHandler(sys.stderr))
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
    logging.basicConfig(level=level.upper(), handlers=handlers, force=True)
