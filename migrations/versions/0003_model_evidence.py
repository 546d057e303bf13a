"""Model evidence and the three root numbers; calibration maps per model version.

- nodes.model_evidence: the node's fixed model-evidence entry (DESIGN.md "Model evidence"):
  {"value", "reliability", "credence", "calibrated", "marginal"}; counted by the frontier rule.
- trees.direct_answer / trees.root_labels_only, root_beliefs.direct / root_beliefs.labels_only:
  beside the tree's belief (trees.root_belief, root_beliefs.belief), the model's direct answer
  and the belief from human labels alone.
- calibrations: monotone maps from model credence to probability, fitted from oracle answers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 12:10:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('model_evidence', sa.JSON(), nullable=True))
    with op.batch_alter_table('trees', schema=None) as batch_op:
        batch_op.add_column(sa.Column('direct_answer', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('root_labels_only', sa.Float(), nullable=True))
    with op.batch_alter_table('root_beliefs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('direct', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('labels_only', sa.Float(), nullable=True))
    op.create_table('calibrations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=500), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('method', sa.String(length=32), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('meta', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('premise', 'direct')", name=op.f('ck_calibrations_kind_known')),
    sa.CheckConstraint('n >= 0', name=op.f('ck_calibrations_n_nonneg')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calibrations'))
    )
    with op.batch_alter_table('calibrations', schema=None) as batch_op:
        batch_op.create_index('ix_calibrations_model_kind_id', ['model', 'kind', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('calibrations', schema=None) as batch_op:
        batch_op.drop_index('ix_calibrations_model_kind_id')
    op.drop_table('calibrations')
    with op.batch_alter_table('root_beliefs', schema=None) as batch_op:
        batch_op.drop_column('labels_only')
        batch_op.drop_column('direct')
    with op.batch_alter_table('trees', schema=None) as batch_op:
        batch_op.drop_column('root_labels_only')
        batch_op.drop_column('direct_answer')
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.drop_column('model_evidence')
