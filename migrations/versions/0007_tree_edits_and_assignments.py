"""Co-authoring the trees and per-tree assignment (issue 13).

- tree_edits: every change a person makes to a tree (premise added, text edited, node deleted or
  moved, an ill-posed answer's rewrite put in place): who, when, and what was there before.
- tree_assignments: who may answer which trees (a tree without rows is open to everyone).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 17:05:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tree_edits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tree_id', sa.Integer(), nullable=False),
    sa.Column('node_id', sa.Integer(), nullable=True),
    sa.Column('annotator_id', sa.Integer(), nullable=True),
    sa.Column('label_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('request_id', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("action IN ('add', 'edit', 'delete', 'move', 'rewrite')",
                       name=op.f('ck_tree_edits_action_known')),
    sa.ForeignKeyConstraint(['tree_id'], ['trees.id'], name=op.f('fk_tree_edits_tree_id_trees'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['annotator_id'], ['annotators.id'], name=op.f('fk_tree_edits_annotator_id_annotators'),
                            ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['label_id'], ['labels.id'], name=op.f('fk_tree_edits_label_id_labels'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tree_edits')),
    sa.UniqueConstraint('annotator_id', 'request_id', name=op.f('uq_tree_edits_annotator_id_request_id'))
    )
    op.create_index('ix_tree_edits_tree_id_id', 'tree_edits', ['tree_id', 'id'], unique=False)
    op.create_table('tree_assignments',
    sa.Column('tree_id', sa.Integer(), nullable=False),
    sa.Column('annotator_id', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tree_id'], ['trees.id'], name=op.f('fk_tree_assignments_tree_id_trees'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['annotator_id'], ['annotators.id'],
                            name=op.f('fk_tree_assignments_annotator_id_annotators'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by'], ['annotators.id'], name=op.f('fk_tree_assignments_created_by_annotators'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('tree_id', 'annotator_id', name=op.f('pk_tree_assignments'))
    )
    op.create_index('ix_tree_assignments_annotator_id', 'tree_assignments', ['annotator_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tree_assignments_annotator_id', table_name='tree_assignments')
    op.drop_table('tree_assignments')
    op.drop_index('ix_tree_edits_tree_id_id', table_name='tree_edits')
    op.drop_table('tree_edits')
