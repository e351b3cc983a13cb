"""Every operation, by the name both doors use, its module imported only when it is asked for.

A command runs one operation: importing all of them would cost every command the start-up of
the others' libraries (Qdrant's client alone was ~40% of it). `OPERATIONS` lists every name at
no cost; looking one up imports its module, whose `OPERATION` is the one definition of its
options and help. The invoke door, which lists them all, imports them all.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import replace

from pipeline.core import Operation

# In the order `invoke --list` and the CLI's help show them; `run-migrations` lives in the
# module `run_migrations`.
NAMES = ("run-migrations", "populate-embeddings", "build-frontend", "build-image", "status",
         "monitor", "deploy-backend", "deploy-frontend", "rollback", "up", "down")

# The operations that change what an environment serves (see Operation.deploys).
DEPLOYING = ("deploy-backend", "deploy-frontend", "rollback", "up")


class _Registry(Mapping[str, Operation]):
    def __init__(self) -> None:
        self._loaded: dict[str, Operation] = {}

    def __getitem__(self, name: str) -> Operation:
        if name not in NAMES:
            raise KeyError(name)
        if name not in self._loaded:
            module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
            operation: Operation = module.OPERATION
            self._loaded[name] = replace(operation, deploys=True) if name in DEPLOYING \
                else operation
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(NAMES)

    def __len__(self) -> int:
        return len(NAMES)


OPERATIONS: Mapping[str, Operation] = _Registry()
