"""Gold questions and learned annotator reliability (issue 13).

- gold_answers: propositions an admin marked with a known answer (mixed into the queue, never shown
  as gold; they score the annotators who answer them).
- annotator_estimates: each annotator's learned reliability (one-coin Dawid-Skene with the
  reliability they were created with as a Beta prior) with its 90% interval; the weight of their
  labels' soft evidence.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 12:50:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('gold_answers',
    sa.Column('proposition_id', sa.Integer(), nullable=False),
    sa.Column('value', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['annotators.id'], name=op.f('fk_gold_answers_created_by_annotators'),
                            ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['proposition_id'], ['propositions.id'],
                            name=op.f('fk_gold_answers_proposition_id_propositions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('proposition_id', name=op.f('pk_gold_answers'))
    )
    op.create_table('annotator_estimates',
    sa.Column('annotator_id', sa.Integer(), nullable=False),
    sa.Column('reliability', sa.Float(), nullable=False),
    sa.Column('low', sa.Float(), nullable=False),
    sa.Column('high', sa.Float(), nullable=False),
    sa.Column('alpha', sa.Float(), nullable=False),
    sa.Column('beta', sa.Float(), nullable=False),
    sa.Column('n_labels', sa.Float(), nullable=False),
    sa.Column('n_gold', sa.Integer(), nullable=False),
    sa.Column('gold_correct', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('reliability > 0 AND reliability < 1', name=op.f('ck_annotator_estimates_reliability_range')),
    sa.CheckConstraint('low <= reliability AND reliability <= high',
                       name=op.f('ck_annotator_estimates_interval_order')),
    sa.ForeignKeyConstraint(['annotator_id'], ['annotators.id'],
                            name=op.f('fk_annotator_estimates_annotator_id_annotators'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('annotator_id', name=op.f('pk_annotator_estimates'))
    )


def downgrade() -> None:
    op.drop_table('annotator_estimates')
    op.drop_table('gold_answers')
