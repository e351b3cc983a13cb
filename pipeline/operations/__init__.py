"""Every operation, by the name both doors use."""

from dataclasses import replace

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

# The operations that change what an environment serves (see Operation.deploys).
DEPLOYING = ("deploy-backend", "deploy-frontend", "rollback", "up")

OPERATIONS: dict[str, Operation] = {
    operation.name: replace(operation, deploys=True) if operation.name in DEPLOYING else operation
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
