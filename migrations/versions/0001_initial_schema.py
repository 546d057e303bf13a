"""Initial schema: propositions, trees, nodes, annotators, labels, model versions, settings.

Revision ID: 0001
Revises: 
Create Date: 2026-11-27 23:45:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('annotators',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('reliability', sa.Float(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("role IN ('annotator', 'admin', 'system')", name=op.f('ck_annotators_role_known')),
    sa.CheckConstraint('reliability > 0.5 AND reliability < 1', name=op.f('ck_annotators_reliability_range')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_annotators')),
    sa.UniqueConstraint('name', name=op.f('uq_annotators_name'))
    )
    op.create_table('model_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('path', sa.Text(), nullable=True),
    sa.Column('base', sa.String(length=500), nullable=True),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('meta', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['model_versions.id'], name=op.f('fk_model_versions_parent_id_model_versions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_versions')),
    sa.UniqueConstraint('name', name=op.f('uq_model_versions_name'))
    )
    op.create_table('propositions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('forest_voi', sa.Float(), nullable=False),
    sa.Column('n_answers', sa.Integer(), nullable=False),
    sa.CheckConstraint('length(text) > 0', name=op.f('ck_propositions_text_not_empty')),
    sa.CheckConstraint('n_answers >= 0', name=op.f('ck_propositions_n_answers_nonneg')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_propositions')),
    sa.UniqueConstraint('key', name=op.f('uq_propositions_key'))
    )
    op.create_table('settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_settings'))
    )
    op.create_table('labels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('proposition_id', sa.Integer(), nullable=False),
    sa.Column('annotator_id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.String(length=128), nullable=False),
    sa.Column('value', sa.Boolean(), nullable=True),
    sa.Column('probability', sa.Float(), nullable=True),
    sa.Column('dont_know', sa.Boolean(), nullable=False),
    sa.Column('ill_posed', sa.Boolean(), nullable=False),
    sa.Column('rewrite', sa.Text(), nullable=True),
    sa.Column('rewrite_proposition_id', sa.Integer(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('seconds', sa.Float(), nullable=True),
    sa.Column('reliability', sa.Float(), nullable=True),
    sa.Column('extra', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('retracted_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint('(CASE WHEN value IS NOT NULL THEN 1 ELSE 0 END) + (CASE WHEN probability IS NOT NULL THEN 1 ELSE 0 END) + (CASE WHEN dont_know THEN 1 ELSE 0 END) + (CASE WHEN ill_posed THEN 1 ELSE 0 END) = 1', name=op.f('ck_labels_one_kind')),
    sa.CheckConstraint('probability IS NULL OR (probability >= 0 AND probability <= 1)', name=op.f('ck_labels_probability_range')),
    sa.CheckConstraint('reliability IS NULL OR (reliability > 0.5 AND reliability <= 1)', name=op.f('ck_labels_reliability_range')),
    sa.CheckConstraint('seconds IS NULL OR seconds >= 0', name=op.f('ck_labels_seconds_nonneg')),
    sa.ForeignKeyConstraint(['annotator_id'], ['annotators.id'], name=op.f('fk_labels_annotator_id_annotators'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['proposition_id'], ['propositions.id'], name=op.f('fk_labels_proposition_id_propositions'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['rewrite_proposition_id'], ['propositions.id'], name=op.f('fk_labels_rewrite_proposition_id_propositions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_labels')),
    sa.UniqueConstraint('annotator_id', 'request_id', name=op.f('uq_labels_annotator_id_request_id'))
    )
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.create_index('ix_labels_annotator_id_created_at', ['annotator_id', 'created_at'], unique=False)
        batch_op.create_index('ix_labels_proposition_id', ['proposition_id'], unique=False)
        batch_op.create_index('uq_labels_live', ['proposition_id', 'annotator_id'], unique=True, sqlite_where=sa.text('retracted_at IS NULL AND reliability IS NULL'), postgresql_where=sa.text('retracted_at IS NULL AND reliability IS NULL'))

    op.create_table('trees',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.Float(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=True),
    sa.Column('root_belief', sa.Float(), nullable=True),
    sa.Column('n_nodes', sa.Integer(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.Column('meta', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("status IN ('active', 'growing', 'archived')", name=op.f('ck_trees_status_known')),
    sa.CheckConstraint('priority >= 0', name=op.f('ck_trees_priority_nonneg')),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_trees_model_version_id_model_versions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trees'))
    )
    with op.batch_alter_table('trees', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trees_content_hash'), ['content_hash'], unique=False)
        batch_op.create_index('ix_trees_created_at', ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_trees_model_version_id'), ['model_version_id'], unique=False)

    op.create_table('nodes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tree_id', sa.Integer(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('local_id', sa.String(length=200), nullable=False),
    sa.Column('proposition_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('depth', sa.Integer(), nullable=False),
    sa.Column('prior', sa.Float(), nullable=True),
    sa.Column('p_if_true', sa.Float(), nullable=True),
    sa.Column('p_if_false', sa.Float(), nullable=True),
    sa.Column('model_credence', sa.Float(), nullable=True),
    sa.Column('rationale', sa.Text(), nullable=True),
    sa.Column('model_output', sa.JSON(), nullable=True),
    sa.Column('extra', sa.JSON(), nullable=False),
    sa.Column('belief', sa.Float(), nullable=True),
    sa.Column('voi', sa.Float(), nullable=False),
    sa.Column('root_if_true', sa.Float(), nullable=True),
    sa.Column('root_if_false', sa.Float(), nullable=True),
    sa.CheckConstraint('(parent_id IS NULL) = (prior IS NOT NULL)', name=op.f('ck_nodes_root_has_prior')),
    sa.CheckConstraint('p_if_false IS NULL OR (p_if_false >= 0 AND p_if_false <= 1)', name=op.f('ck_nodes_p_if_false_range')),
    sa.CheckConstraint('p_if_true IS NULL OR (p_if_true >= 0 AND p_if_true <= 1)', name=op.f('ck_nodes_p_if_true_range')),
    sa.CheckConstraint('prior IS NULL OR (prior >= 0 AND prior <= 1)', name=op.f('ck_nodes_prior_range')),
    sa.ForeignKeyConstraint(['parent_id'], ['nodes.id'], name=op.f('fk_nodes_parent_id_nodes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['proposition_id'], ['propositions.id'], name=op.f('fk_nodes_proposition_id_propositions'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['tree_id'], ['trees.id'], name=op.f('fk_nodes_tree_id_trees'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_nodes')),
    sa.UniqueConstraint('tree_id', 'local_id', name=op.f('uq_nodes_tree_id_local_id'))
    )
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_nodes_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_nodes_proposition_id'), ['proposition_id'], unique=False)





def downgrade() -> None:
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_nodes_proposition_id'))
        batch_op.drop_index(batch_op.f('ix_nodes_parent_id'))

    op.drop_table('nodes')
    with op.batch_alter_table('trees', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trees_model_version_id'))
        batch_op.drop_index('ix_trees_created_at')
        batch_op.drop_index(batch_op.f('ix_trees_content_hash'))

    op.drop_table('trees')
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.drop_index('uq_labels_live', sqlite_where=sa.text('retracted_at IS NULL AND reliability IS NULL'), postgresql_where=sa.text('retracted_at IS NULL AND reliability IS NULL'))
        batch_op.drop_index('ix_labels_proposition_id')
        batch_op.drop_index('ix_labels_annotator_id_created_at')

    op.drop_table('labels')
    op.drop_table('settings')
    op.drop_table('propositions')
    op.drop_table('model_versions')
    op.drop_table('annotators')
