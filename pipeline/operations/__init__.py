"""Every operation, by the name both doors use."""

from pipeline.core import Operation
from pipeline.operations import run_migrations

OPERATIONS: dict[str, Operation] = {
    operation.name: operation for operation in (run_migrations.OPERATION,)
}
