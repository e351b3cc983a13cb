"""Known secret values never leave the process: output, logs, records and API answers pass here."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from textbook_api.config import SECRET_ENV_VARS

MASK = "***"
_URL_PASSWORD = re.compile(
    r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^@\s]+)(?=@)", re.I
)


def mask_url_password(text: str) -> str:
    """`postgresql://user:secret@host/db` → `postgresql://user:***@host/db`, even if malformed."""
    return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    values = [env[name] for name in SECRET_ENV_VARS if env.get(name)]
    for match in _URL_PASSWORD.finditer(env.get("DATABASE_URL", "")):
        values.append(match.group("password"))
    # Longest first, so a secret containing another is masked whole.
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = list(secrets)

    @classmethod
    def from_environment(cls) -> Redactor:
        return cls(secret_values())

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return mask_url_password(text)


def redact_data(value: Any, redact: Redactor) -> Any:
    """`redact` applied to every string inside a JSON-like value."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(key)): redact_data(item, redact) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(item, redact) for item in value]
    return value
