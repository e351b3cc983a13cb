"""Known secret values never leave the process: output, logs, records and API answers pass here.

The secrets are the process's own settings (the environment and `.env`, read by the same
`Settings` that uses them) plus the deploy-target tokens that no setting models.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from textbook_api.config import SECRET_ENV_VARS, Settings

MASK = "***"
# Shorter values are too likely to occur in ordinary text to be masked everywhere.
MIN_SECRET_LENGTH = 4
# Secret settings whose secret is only the password inside them: the rest of the URL names the
# database, which plans and messages must be able to show.
PASSWORD_ONLY = frozenset({"database_url"})
_URL_PASSWORD = re.compile(
    r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^@\s]+)(?=@)", re.I
)


def mask_url_password(text: str) -> str:
    """`postgresql://user:secret@host/db` → `postgresql://user:***@host/db`, even if malformed."""
    return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)


def url_passwords(text: str) -> Iterator[str]:
    """The password of every URL in `text`, as written and percent-decoded."""
    for match in _URL_PASSWORD.finditer(text):
        yield match.group("password")
        yield unquote(match.group("password"))
    try:
        password = urlsplit(text.strip()).password
    except ValueError:  # a malformed URL: the pattern above still found what it could
        password = None
    if password:
        yield password
        yield unquote(password)


def secret_values(
    settings: Settings | None = None, environ: Mapping[str, str] | None = None
) -> list[str]:
    """Every secret value: secret settings, passwords inside any setting that holds a URL, and
    the secret variables (`SECRET_ENV_VARS`) of the environment, modelled as settings or not."""
    env = os.environ if environ is None else environ
    values = [env[name] for name in SECRET_ENV_VARS if env.get(name)]
    values += url_passwords(env.get("DATABASE_URL", ""))
    if settings is not None:
        for name in type(settings).model_fields:
            value = getattr(settings, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
                if name not in PASSWORD_ONLY:
                    values.append(value)
            if isinstance(value, str):
                values += url_passwords(value)
    # Longest first, so a secret containing another is masked whole.
    return sorted({v for v in values if len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = list(secrets)

    @classmethod
    def from_settings(cls, settings: Settings) -> Redactor:
        return cls(secret_values(settings))

    @classmethod
    def from_environment(cls) -> Redactor:
        """For when the settings do not validate: the environment's secret variables only."""
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
