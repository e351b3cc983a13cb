"""deployment audit trail

Revision ID: 0001
Revises:
Create Date: 2026-11-22 03:10:57.665873
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployment_configuration",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_configuration")),
        sa.UniqueConstraint(
            "service",
            "environment",
            "target",
            name=op.f("uq_deployment_configuration_service_environment_target"),
        ),
    )
    op.create_table(
        "deployment_job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("git_sha", sa.String(length=40), nullable=True),
        sa.Column("git_ref", sa.String(length=255), nullable=True),
        sa.Column("actor", sa.String(length=255), nullable=True),
        sa.Column("trigger", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("configuration_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'in_progress', 'succeeded', 'failed', 'cancelled', 'rolled_back')",
            name=op.f("ck_deployment_job_state"),
        ),
        sa.ForeignKeyConstraint(
            ["configuration_id"],
            ["deployment_configuration.id"],
            name=op.f("fk_deployment_job_configuration_id_deployment_configuration"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_job")),
    )
    with op.batch_alter_table("deployment_job", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deployment_job_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_deployment_job_environment"), ["environment"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_deployment_job_operation"), ["operation"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_deployment_job_service"), ["service"], unique=False)
        batch_op.create_index(batch_op.f("ix_deployment_job_state"), ["state"], unique=False)

    op.create_table(
        "deployment_artifact",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["deployment_job.id"],
            name=op.f("fk_deployment_artifact_job_id_deployment_job"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_artifact")),
    )
    op.create_table(
        "deployment_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("step", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.CheckConstraint(
            "level IN ('debug', 'info', 'warning', 'error')", name=op.f("ck_deployment_event_level")
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["deployment_job.id"],
            name=op.f("fk_deployment_event_job_id_deployment_job"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_event")),
        sa.UniqueConstraint("job_id", "sequence", name=op.f("uq_deployment_event_job_id_sequence")),
    )


def downgrade() -> None:
    op.drop_table("deployment_event")
    op.drop_table("deployment_artifact")
    with op.batch_alter_table("deployment_job", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deployment_job_state"))
        batch_op.drop_index(batch_op.f("ix_deployment_job_service"))
        batch_op.drop_index(batch_op.f("ix_deployment_job_operation"))
        batch_op.drop_index(batch_op.f("ix_deployment_job_environment"))
        batch_op.drop_index(batch_op.f("ix_deployment_job_created_at"))

    op.drop_table("deployment_job")
    op.drop_table("deployment_configuration")
