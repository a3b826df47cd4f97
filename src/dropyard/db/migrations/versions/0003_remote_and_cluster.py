"""remote transfers and cluster

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 21:11:15.951201
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import dropyard.db.base

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bans",
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", dropyard.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("banned_until", dropyard.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("strikes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_bans")),
    )
    op.create_table(
        "installation_secrets",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", dropyard.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_installation_secrets")),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("expires_at", dropyard.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )
    op.create_table(
        "remote_taken",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("file_id", sa.Integer(), nullable=True),
        sa.Column("taken_at", dropyard.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_remote_taken_connection_id_connections"),
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_remote_taken_file_id_files")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remote_taken")),
        sa.UniqueConstraint(
            "connection_id",
            "name",
            "size",
            "mtime",
            name=op.f("uq_remote_taken_connection_id_name_size_mtime"),
        ),
    )
    with op.batch_alter_table("remote_taken", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_remote_taken_connection_id"), ["connection_id"], unique=False
        )

    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("remote_error", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("remote_error_at", dropyard.db.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("presented_fingerprint", sa.String(length=200), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_column("presented_fingerprint")
        batch_op.drop_column("remote_error_at")
        batch_op.drop_column("remote_error")

    with op.batch_alter_table("remote_taken", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_remote_taken_connection_id"))

    op.drop_table("remote_taken")
    op.drop_table("leases")
    op.drop_table("installation_secrets")
    op.drop_table("bans")
