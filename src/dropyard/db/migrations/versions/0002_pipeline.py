"""pipeline ledger and file claims

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 16:59:03.933665
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import dropyard.db.base

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bonus_results",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("qualifying_actions", sa.Integer(), nullable=False),
        sa.Column("qualifying_amount", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column("tier_reached", sa.Integer(), nullable=False),
        sa.Column("bonus_amount", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("computed_at", dropyard.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_bonus_results_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_bonus_results_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint(
            "campaign_id", "partner_id", "period", name=op.f("pk_bonus_results")
        ),
    )
    op.create_table(
        "catalog_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=50), nullable=False),
        sa.Column("title", sa.String(length=150), nullable=False),
        sa.Column("link", sa.String(length=2048), nullable=False),
        sa.Column("image_link", sa.String(length=2048), nullable=False),
        sa.Column("price", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("sale_price", sa.Numeric(precision=16, scale=2), nullable=True),
        sa.Column("availability", sa.String(length=16), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_catalog_items_connection_id_connections"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_items")),
        sa.UniqueConstraint(
            "connection_id",
            "generation",
            "item_id",
            name=op.f("uq_catalog_items_connection_id_generation_item_id"),
        ),
    )
    op.create_table(
        "scheduled_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("due_at", dropyard.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", dropyard.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", dropyard.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_scheduled_runs_connection_id_connections"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_runs")),
        sa.UniqueConstraint(
            "connection_id", "due_at", name=op.f("uq_scheduled_runs_connection_id_due_at")
        ),
        sa.UniqueConstraint("run_id", name=op.f("uq_scheduled_runs_run_id")),
    )
    op.create_table(
        "actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("tracker_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("click_id", sa.String(length=128), nullable=True),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("customer_status", sa.String(length=16), nullable=True),
        sa.Column("promo_code", sa.String(length=64), nullable=True),
        sa.Column("event_date", dropyard.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column("original_amount", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column("payout", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("locks_at", dropyard.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("modification_count", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=True),
        sa.Column("created_at", dropyard.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("modified_at", dropyard.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_actions_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_actions_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(["file_id"], ["files.id"], name=op.f("fk_actions_file_id_files")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_actions_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["tracker_id"],
            ["action_trackers.id"],
            name=op.f("fk_actions_tracker_id_action_trackers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_actions")),
        sa.UniqueConstraint(
            "campaign_id",
            "tracker_id",
            "order_id",
            name=op.f("uq_actions_campaign_id_tracker_id_order_id"),
        ),
    )
    with op.batch_alter_table("actions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_actions_account_id"), ["account_id"], unique=False)
        batch_op.create_index(
            "ix_actions_campaign_event", ["campaign_id", "event_date"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_actions_modified_at"), ["modified_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_actions_partner_id"), ["partner_id"], unique=False)
        batch_op.create_index("ix_actions_tracker_order", ["tracker_id", "order_id"], unique=False)

    op.create_table(
        "catalogs",
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=True),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", dropyard.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_catalogs_connection_id_connections"),
        ),
        sa.ForeignKeyConstraint(["file_id"], ["files.id"], name=op.f("fk_catalogs_file_id_files")),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_catalogs")),
    )
    op.create_table(
        "clicks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("click_id", sa.String(length=128), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("event_date", dropyard.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("landing_page_url", sa.String(length=2048), nullable=True),
        sa.Column("referring_url", sa.String(length=2048), nullable=True),
        sa.Column("sub_id1", sa.String(length=255), nullable=True),
        sa.Column("sub_id2", sa.String(length=255), nullable=True),
        sa.Column("sub_id3", sa.String(length=255), nullable=True),
        sa.Column("device_type", sa.String(length=16), nullable=True),
        sa.Column("country_code", sa.String(length=2), nullable=True),
        sa.Column("file_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_clicks_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_clicks_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(["file_id"], ["files.id"], name=op.f("fk_clicks_file_id_files")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_clicks_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clicks")),
        sa.UniqueConstraint("account_id", "click_id", name=op.f("uq_clicks_account_id_click_id")),
    )
    with op.batch_alter_table("clicks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_clicks_campaign_id"), ["campaign_id"], unique=False)

    op.create_table(
        "action_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=255), nullable=True),
        sa.Column("category", sa.String(length=255), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("item_price", sa.Numeric(precision=16, scale=2), nullable=True),
        sa.Column("amount", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.ForeignKeyConstraint(
            ["action_id"], ["actions.id"], name=op.f("fk_action_items_action_id_actions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_items")),
    )
    with op.batch_alter_table("action_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_action_items_action_id"), ["action_id"], unique=False)

    op.create_table(
        "action_modifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("at", dropyard.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("old_amount", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column("new_amount", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column("old_status", sa.String(length=16), nullable=False),
        sa.Column("new_status", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["action_id"], ["actions.id"], name=op.f("fk_action_modifications_action_id_actions")
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_action_modifications_file_id_files")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_modifications")),
    )
    with op.batch_alter_table("action_modifications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_action_modifications_action_id"), ["action_id"], unique=False
        )

    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_token", sa.String(length=36), nullable=True))
        batch_op.add_column(
            sa.Column("lease_until", dropyard.db.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("not_before", dropyard.db.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("run_id", sa.String(length=36), nullable=True))
        batch_op.add_column(
            sa.Column("range_start", dropyard.db.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("range_end", dropyard.db.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("expires_at", dropyard.db.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
        batch_op.drop_column("range_end")
        batch_op.drop_column("range_start")
        batch_op.drop_column("run_id")
        batch_op.drop_column("not_before")
        batch_op.drop_column("lease_until")
        batch_op.drop_column("claim_token")

    with op.batch_alter_table("action_modifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_action_modifications_action_id"))

    op.drop_table("action_modifications")
    with op.batch_alter_table("action_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_action_items_action_id"))

    op.drop_table("action_items")
    with op.batch_alter_table("clicks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clicks_campaign_id"))

    op.drop_table("clicks")
    op.drop_table("catalogs")
    with op.batch_alter_table("actions", schema=None) as batch_op:
        batch_op.drop_index("ix_actions_tracker_order")
        batch_op.drop_index(batch_op.f("ix_actions_partner_id"))
        batch_op.drop_index(batch_op.f("ix_actions_modified_at"))
        batch_op.drop_index("ix_actions_campaign_event")
        batch_op.drop_index(batch_op.f("ix_actions_account_id"))

    op.drop_table("actions")
    op.drop_table("scheduled_runs")
    op.drop_table("catalog_items")
    op.drop_table("bonus_results")
