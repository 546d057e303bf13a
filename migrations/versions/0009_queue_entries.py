"""The queue's columns move out of ``propositions`` into their own narrow table (issue 15).

An answer at 1M nodes rewrites the forest VoI and rank of ~400 propositions.  In ``propositions``
those rows carry the key and the text (208 MB at 1M nodes, more than the test server's
``shared_buffers``), so the UPDATE read its pages from outside PostgreSQL's cache and was an
answer's largest statement.  ``queue_entries`` (one row per proposition: forest VoI, answers, rank,
bucket) is a few dozen bytes a row.  The ORM class ``Proposition`` maps the join of the two.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 01:20:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'queue_entries',
        sa.Column('proposition_id', sa.Integer(), nullable=False),
        sa.Column('forest_voi', sa.Float(), nullable=False),
        sa.Column('n_answers', sa.Integer(), nullable=False),
        sa.Column('queue_rank', sa.Float(), nullable=True),
        sa.Column('queue_bucket', sa.Integer(), nullable=True),
        sa.CheckConstraint('n_answers >= 0', name=op.f('ck_queue_entries_n_answers_nonneg')),
        sa.ForeignKeyConstraint(['proposition_id'], ['propositions.id'],
                                name=op.f('fk_queue_entries_proposition_id_propositions'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('proposition_id', name=op.f('pk_queue_entries')),
        postgresql_with={"fillfactor": 70},
    )
    op.execute("INSERT INTO queue_entries (proposition_id, forest_voi, n_answers, queue_rank, queue_bucket) "
               "SELECT id, forest_voi, n_answers, queue_rank, queue_bucket FROM propositions")
    op.create_index('ix_queue_entries_queue_bucket', 'queue_entries', ['queue_bucket'], unique=False)
    with op.batch_alter_table('propositions', schema=None) as batch_op:
        batch_op.drop_index('ix_propositions_queue_bucket')
        batch_op.drop_constraint(op.f('ck_propositions_n_answers_nonneg'), type_='check')
        batch_op.drop_column('queue_bucket')
        batch_op.drop_column('queue_rank')
        batch_op.drop_column('n_answers')
        batch_op.drop_column('forest_voi')
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE propositions RESET (fillfactor)")  # its rows are no longer updated


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE propositions SET (fillfactor = 70)")
    with op.batch_alter_table('propositions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('forest_voi', sa.Float(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('n_answers', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('queue_rank', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('queue_bucket', sa.Integer(), nullable=True))
    op.execute("UPDATE propositions SET forest_voi = q.forest_voi, n_answers = q.n_answers, "
               "queue_rank = q.queue_rank, queue_bucket = q.queue_bucket "
               "FROM queue_entries AS q WHERE q.proposition_id = propositions.id")
    with op.batch_alter_table('propositions', schema=None) as batch_op:
        batch_op.alter_column('forest_voi', server_default=None)
        batch_op.alter_column('n_answers', server_default=None)
        batch_op.create_check_constraint(op.f('ck_propositions_n_answers_nonneg'), 'n_answers >= 0')
        batch_op.create_index('ix_propositions_queue_bucket', ['queue_bucket'], unique=False)
    op.drop_index('ix_queue_entries_queue_bucket', table_name='queue_entries')
    op.drop_table('queue_entries')
