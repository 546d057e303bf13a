"""Consistency flags' resolutions (issue 13): who resolved which flag, when, and why.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 13:05:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('flag_resolutions',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('resolved_by', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['resolved_by'], ['annotators.id'], name=op.f('fk_flag_resolutions_resolved_by_annotators'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_flag_resolutions'))
    )


def downgrade() -> None:
    op.drop_table('flag_resolutions')
