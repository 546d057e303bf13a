"""Server-side web sessions and stored login throttling (issue 14).

- web_sessions: one row per login to the web app (a SHA-256 of the cookie's token); revoked at
  logout, password change and deactivation; checked on every write.
- login_throttle: failed logins per account name and per client address, with the delay and the
  lock they earned, so restarting the server does not reset the limit.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 12:05:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('web_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('annotator_id', sa.Integer(), nullable=False),
    sa.Column('client', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_why', sa.String(length=16), nullable=True),
    sa.CheckConstraint("revoked_why IS NULL OR revoked_why IN ('logout', 'password', 'deactivated', 'admin')",
                       name=op.f('ck_web_sessions_revoked_why_known')),
    sa.ForeignKeyConstraint(['annotator_id'], ['annotators.id'], name=op.f('fk_web_sessions_annotator_id_annotators'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_web_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_web_sessions_token_hash'))
    )
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_sessions_annotator_id'), ['annotator_id'], unique=False)
    op.create_table('login_throttle',
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_failure_at', sa.DateTime(), nullable=False),
    sa.Column('not_before', sa.DateTime(), nullable=True),
    sa.Column('locked_until', sa.DateTime(), nullable=True),
    sa.CheckConstraint("kind IN ('account', 'client')", name=op.f('ck_login_throttle_kind_known')),
    sa.CheckConstraint('failures >= 0', name=op.f('ck_login_throttle_failures_nonneg')),
    sa.PrimaryKeyConstraint('kind', 'key', name=op.f('pk_login_throttle'))
    )


def downgrade() -> None:
    op.drop_table('login_throttle')
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_sessions_annotator_id'))
    op.drop_table('web_sessions')
