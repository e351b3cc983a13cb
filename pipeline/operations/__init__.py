"""Every operation, by the name both doors use."""

from pipeline.core import Operation
from pipeline.operations import (
    build_frontend,
    build_image,
    deploy_backend,
    deploy_frontend,
    down,
    monitor,
    populate_embeddings,
    rollback,
    run_migrations,
    status,
    up,
)

OPERATIONS: dict[str, Operation] = {
    operation.name: operation
    for operation in (
        run_migrations.OPERATION,
        populate_embeddings.OPERATION,
        build_frontend.OPERATION,
        build_image.OPERATION,
        status.OPERATION,
        monitor.OPERATION,
        deploy_backend.OPERATION,
        deploy_frontend.OPERATION,
        rollback.OPERATION,
        up.OPERATION,
        down.OPERATION,
    )
}
