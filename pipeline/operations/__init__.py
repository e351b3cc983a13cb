"""Every operation, by the name both doors use."""

from pipeline.core import Operation
from pipeline.operations import (
    build_frontend,
    monitor,
    populate_embeddings,
    run_migrations,
    status,
)

OPERATIONS: dict[str, Operation] = {
    operation.name: operation
    for operation in (
        run_migrations.OPERATION,
        populate_embeddings.OPERATION,
        build_frontend.OPERATION,
        status.OPERATION,
        monitor.OPERATION,
    )
}
