"""The queue and history: leases, root-belief history, loop runs; propositions.queue_rank.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 23:50:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A new column on an existing table: batch mode copies the table on SQLite.
    with op.batch_alter_table('propositions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('queue_rank', sa.Float(), nullable=True))
        batch_op.create_index('ix_propositions_queue_rank_id', ['queue_rank', 'id'], unique=False)
    # Open questions start out ranked by their forest VoI.
    op.execute("UPDATE propositions SET queue_rank = forest_voi WHERE forest_voi > 0 AND n_answers = 0")

    op.create_table('leases',
    sa.Column('proposition_id', sa.Integer(), nullable=False),
    sa.Column('annotator_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['annotator_id'], ['annotators.id'], name=op.f('fk_leases_annotator_id_annotators'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['proposition_id'], ['propositions.id'], name=op.f('fk_leases_proposition_id_propositions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('proposition_id', 'annotator_id', name=op.f('pk_leases'))
    )
    with op.batch_alter_table('leases', schema=None) as batch_op:
        batch_op.create_index('ix_leases_annotator_id', ['annotator_id'], unique=False)

    op.create_table('loop_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('stats', sa.JSON(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=True),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_loop_runs_model_version_id_model_versions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loop_runs'))
    )
    op.create_table('root_beliefs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tree_id', sa.Integer(), nullable=False),
    sa.Column('belief', sa.Float(), nullable=False),
    sa.Column('cause', sa.String(length=16), nullable=False),
    sa.Column('label_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['label_id'], ['labels.id'], name=op.f('fk_root_beliefs_label_id_labels'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tree_id'], ['trees.id'], name=op.f('fk_root_beliefs_tree_id_trees'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_root_beliefs'))
    )
    with op.batch_alter_table('root_beliefs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_root_beliefs_label_id'), ['label_id'], unique=False)
        batch_op.create_index('ix_root_beliefs_tree_id_id', ['tree_id', 'id'], unique=False)

    op.create_table('loop_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('tree_id', sa.Integer(), nullable=True),
    sa.Column('node_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.Float(), nullable=False),
    sa.Column('worker', sa.String(length=128), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('claimed_at', sa.DateTime(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['node_id'], ['nodes.id'], name=op.f('fk_loop_tasks_node_id_nodes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['loop_runs.id'], name=op.f('fk_loop_tasks_run_id_loop_runs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tree_id'], ['trees.id'], name=op.f('fk_loop_tasks_tree_id_trees'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loop_tasks')),
    sa.UniqueConstraint('run_id', 'kind', 'key', name=op.f('uq_loop_tasks_run_id_kind_key'))
    )
    with op.batch_alter_table('loop_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_loop_tasks_node_id'), ['node_id'], unique=False)
        batch_op.create_index('ix_loop_tasks_run_id_status_priority', ['run_id', 'status', 'priority'], unique=False)
        batch_op.create_index(batch_op.f('ix_loop_tasks_tree_id'), ['tree_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('loop_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_loop_tasks_tree_id'))
        batch_op.drop_index('ix_loop_tasks_run_id_status_priority')
        batch_op.drop_index(batch_op.f('ix_loop_tasks_node_id'))
    op.drop_table('loop_tasks')
    with op.batch_alter_table('root_beliefs', schema=None) as batch_op:
        batch_op.drop_index('ix_root_beliefs_tree_id_id')
        batch_op.drop_index(batch_op.f('ix_root_beliefs_label_id'))
    op.drop_table('root_beliefs')
    op.drop_table('loop_runs')
    with op.batch_alter_table('leases', schema=None) as batch_op:
        batch_op.drop_index('ix_leases_annotator_id')
    op.drop_table('leases')
    with op.batch_alter_table('propositions', schema=None) as batch_op:
        batch_op.drop_index('ix_propositions_queue_rank_id')
        batch_op.drop_column('queue_rank')
