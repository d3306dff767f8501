"""The ledger's hash chain, and the cloud session each session-opening call opened.

Rows already in the ledger are chained in id order, as if they had been recorded with
the chain: a 'sent' link for each, an 'outcome' link for each that ended. Rows still
'sending' stay so; the edge marks them 'interrupted' when it starts.

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-20
"""

from __future__ import annotations

from types import SimpleNamespace

import sqlalchemy as sa
from alembic import op

from edge_agent.store import chain

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None

# The columns as this revision knows them, so later model changes cannot change it.
_entries = sa.table(
    "ledger_entries",
    sa.column("id", sa.Integer()),
    sa.column("created_at", sa.DateTime()),
    sa.column("user_id", sa.String()),
    sa.column("request_id", sa.String()),
    sa.column("mode", sa.String()),
    sa.column("endpoint", sa.String()),
    sa.column("method", sa.String()),
    sa.column("payload", sa.LargeBinary()),
    sa.column("bytes_up", sa.Integer()),
    sa.column("bytes_down", sa.Integer()),
    sa.column("status", sa.String()),
    sa.column("http_status", sa.Integer()),
    sa.column("error", sa.Text()),
    sa.column("duration_ms", sa.Float()),
    sa.column("guard_policy", sa.String()),
    sa.column("guard_findings", sa.JSON()),
    sa.column("cloud_session", sa.String()),
    sa.column("salt", sa.String()),
    sa.column("chain_hash", sa.String()),
)
_links = sa.table(
    "ledger_chain",
    sa.column("event", sa.String()),
    sa.column("entry_id", sa.Integer()),
    sa.column("digest", sa.String()),
    sa.column("hash", sa.String()),
)


def upgrade() -> None:
    # Plain ADD COLUMN: SQLite supports it without copying the table.
    op.add_column("ledger_entries", sa.Column("cloud_session", sa.String(128), nullable=True))
    op.add_column("ledger_entries", sa.Column("salt", sa.String(32), nullable=True))
    op.add_column("ledger_entries", sa.Column("chain_hash", sa.String(64), nullable=True))
    op.create_table(
        "ledger_chain",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_ledger_chain")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_ledger_chain_entry_id"), "ledger_chain", ["entry_id"], unique=False)
    _chain_existing_rows(op.get_bind())


def _chain_existing_rows(connection: sa.Connection) -> None:
    previous = chain.GENESIS
    rows = connection.execute(sa.select(_entries).order_by(_entries.c.id)).mappings().all()
    for row in rows:
        entry = SimpleNamespace(**{**row, "salt": chain.new_salt()})
        events = [(chain.SENT, chain.sent_content(entry))]
        if entry.status != "sending":
            events.append((chain.OUTCOME, chain.outcome_content(entry)))
        for event, content in events:
            content_digest = chain.digest(content)
            previous = chain.link_hash(previous, content_digest)
            connection.execute(
                _links.insert().values(
                    event=event, entry_id=row["id"], digest=content_digest, hash=previous
                )
            )
        connection.execute(
            _entries.update()
            .where(_entries.c.id == row["id"])
            .values(salt=entry.salt, chain_hash=previous)
        )


def downgrade() -> None:
    op.drop_index(op.f("ix_ledger_chain_entry_id"), table_name="ledger_chain")
    op.drop_table("ledger_chain")
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_column("chain_hash")
        batch.drop_column("salt")
        batch.drop_column("cloud_session")
