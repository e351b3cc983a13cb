"""deploy.toml: the committed deployment configuration that is not secret.

It holds `[<section>.<environment>]` tables: `frontend` (build-frontend's public settings) and
`kubernetes` (the Helm release of the kubernetes target). One loader reads every section: it
checks each table against the keys and types its section declares, and every error names the
file and the key (`deploy.toml: kubernetes.staging.release is missing`). What a value means
(a URL, a DNS label) is checked by the module that owns the section.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError

DEPLOY_CONFIG = Path("deploy.toml")  # relative to the repository root (both doors run there)

_KINDS = {str: "a string", int: "an integer"}


def load_section(config: Path, section: str, keys: Mapping[str, type]) -> dict[str, dict[str, Any]]:
    """Every `[section.<environment>]` table by environment (sorted), each holding exactly
    `keys`, each value of its declared type."""
    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{config} is missing: it holds the [{section}.<environment>] tables")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"{config}: not valid TOML: {error}") from None
    tables = data.get(section)
    if not isinstance(tables, dict) or not tables:
        raise UsageError(f"{config}: no [{section}.<environment>] table")
    for environment, table in tables.items():
        prefix = f"{section}.{environment}"
        if not isinstance(table, dict):
            raise UsageError(f"{config}: {prefix} must be a table")
        unknown = sorted(set(table) - set(keys))
        if unknown:
            raise UsageError(f"{config}: {prefix}.{unknown[0]} is not a known key")
        for key, kind in keys.items():
            if key not in table:
                raise UsageError(f"{config}: {prefix}.{key} is missing")
            # TOML's true is a Python bool, which is an int: not a number of seconds.
            if not isinstance(table[key], kind) or isinstance(table[key], bool):
                raise UsageError(f"{config}: {prefix}.{key} must be {_KINDS[kind]}")
    return dict(sorted(tables.items()))
