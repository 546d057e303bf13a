"""The queue ranks by a coarse bucket of the forest VoI (issue 15).

``propositions.queue_bucket`` = floor(8 ln queue_rank) is indexed instead of ``queue_rank``: the
queue reads the top bucket and orders it by ``queue_rank`` (the same order as before), and an answer
rewrites index entries only for the propositions that change bucket.  On PostgreSQL the propositions
and nodes tables get a fillfactor (70 and 50) so the answer's row updates can stay on their page
(HOT); it applies to pages written from now on (``VACUUM FULL propositions, nodes`` applies it to all).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 20:40:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('propositions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('queue_bucket', sa.Integer(), nullable=True))
        batch_op.drop_index('ix_propositions_queue_rank_id')
        batch_op.create_index('ix_propositions_queue_bucket', ['queue_bucket'], unique=False)
    # compute.bucket_sql's formula as it is today (a migration must not follow later code changes)
    if op.get_bind().dialect.name == "sqlite":
        op.execute("UPDATE propositions SET queue_bucket = CAST(ln(queue_rank) * 8 + 6000 AS INTEGER) - 6000 "
                   "WHERE queue_rank IS NOT NULL")
    else:
        op.execute("UPDATE propositions SET queue_bucket = floor(ln(queue_rank) * 8 + 6000) - 6000 "
                   "WHERE queue_rank IS NOT NULL")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE propositions SET (fillfactor = 70)")
        op.execute("ALTER TABLE nodes SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE propositions RESET (fillfactor)")
        op.execute("ALTER TABLE nodes RESET (fillfactor)")
    with op.batch_alter_table('propositions', schema=None) as batch_op:
        batch_op.drop_index('ix_propositions_queue_bucket')
        batch_op.create_index('ix_propositions_queue_rank_id', ['queue_rank', 'id'], unique=False)
        batch_op.drop_column('queue_bucket')
