"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 04:49:27.066964
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('checkpoint',
    sa.Column('account', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('mailbox', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('uidvalidity', sa.Integer(), nullable=False),
    sa.Column('last_uid', sa.Integer(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('account', 'mailbox')
    )
    op.create_table('code_release',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('effective', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('loaded_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('question',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('dedupe_key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('message_id', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('account', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('mailbox', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('uidvalidity', sa.Integer(), nullable=True),
    sa.Column('uid', sa.Integer(), nullable=True),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('body_downloaded', sa.Boolean(), nullable=False),
    sa.Column('received_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('from_addr', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
    sa.Column('from_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('subject', sa.Text(), nullable=True),
    sa.Column('sent_date', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('body_source', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('new_text', sa.Text(), nullable=True),
    sa.Column('quoted_text', sa.Text(), nullable=True),
    sa.Column('signature', sa.Text(), nullable=True),
    sa.Column('attachments', sa.JSON(), nullable=True),
    sa.Column('defects', sa.JSON(), nullable=True),
    sa.Column('codes', sa.JSON(), nullable=True),
    sa.Column('modifiers', sa.JSON(), nullable=True),
    sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('claimed_until', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account', 'mailbox', 'uidvalidity', 'uid', name='uq_question_imap_key'),
    sa.UniqueConstraint('dedupe_key')
    )
    with op.batch_alter_table('question', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_question_received_at'), ['received_at'], unique=False)
        batch_op.create_index('ix_question_sender_received', ['from_addr', 'received_at'], unique=False)
        batch_op.create_index('ix_question_status_id', ['status', 'id'], unique=False)

    op.create_table('code',
    sa.Column('system', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('family', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=True),
    sa.Column('addon', sa.Boolean(), nullable=False),
    sa.Column('billable', sa.Boolean(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('effective', sa.Date(), nullable=True),
    sa.Column('end_date', sa.Date(), nullable=True),
    sa.Column('release_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['release_id'], ['code_release.id'], ),
    sa.PrimaryKeyConstraint('system', 'code')
    )
    with op.batch_alter_table('code', schema=None) as batch_op:
        batch_op.create_index('ix_code_family', ['family'], unique=False)

    op.create_table('code_family',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('system', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('range_start', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
    sa.Column('range_end', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
    sa.Column('summary', sa.Text(), nullable=True),
    sa.Column('release_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['release_id'], ['code_release.id'], ),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('code_relation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('system', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('related_system', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('related', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('release_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['release_id'], ['code_release.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('code_relation', schema=None) as batch_op:
        batch_op.create_index('ix_relation_code', ['system', 'code'], unique=False)

    op.create_table('event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('question_id', sa.Integer(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('from_status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('to_status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['question_id'], ['question.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_question_id'), ['question_id'], unique=False)

    op.create_table('mue',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('setting', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('units', sa.Integer(), nullable=False),
    sa.Column('adjudication', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=True),
    sa.Column('rationale', sa.Text(), nullable=True),
    sa.Column('release_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['release_id'], ['code_release.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('mue', schema=None) as batch_op:
        batch_op.create_index('ix_mue_code', ['code'], unique=False)

    op.create_table('ptp_edit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('setting', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('column1', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('column2', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('effective', sa.Date(), nullable=True),
    sa.Column('deletion', sa.Date(), nullable=True),
    sa.Column('modifier_indicator', sqlmodel.sql.sqltypes.AutoString(length=1), nullable=False),
    sa.Column('rationale', sa.Text(), nullable=True),
    sa.Column('release_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['release_id'], ['code_release.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ptp_edit', schema=None) as batch_op:
        batch_op.create_index('ix_ptp_pair', ['column1', 'column2'], unique=False)

    op.create_table('raw_message',
    sa.Column('question_id', sa.Integer(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['question_id'], ['question.id'], ),
    sa.PrimaryKeyConstraint('question_id')
    )
    op.create_table('reply',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('question_id', sa.Integer(), nullable=False),
    sa.Column('purpose', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('to_addr', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('html', sa.Text(), nullable=False),
    sa.Column('message_id', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('in_reply_to', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('references', sa.Text(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('edited_text', sa.Text(), nullable=True),
    sa.Column('edited_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('edited_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('to_send', sa.Boolean(), nullable=False),
    sa.Column('failed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('send_attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('first_attempt_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('lease_owner', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('lease_until', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['question_id'], ['question.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_id'),
    sa.UniqueConstraint('question_id', 'purpose', name='uq_reply_question_purpose')
    )
    with op.batch_alter_table('reply', schema=None) as batch_op:
        batch_op.create_index('ix_reply_due', ['sent_at', 'next_attempt_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('reply', schema=None) as batch_op:
        batch_op.drop_index('ix_reply_due')

    op.drop_table('reply')
    op.drop_table('raw_message')
    with op.batch_alter_table('ptp_edit', schema=None) as batch_op:
        batch_op.drop_index('ix_ptp_pair')

    op.drop_table('ptp_edit')
    with op.batch_alter_table('mue', schema=None) as batch_op:
        batch_op.drop_index('ix_mue_code')

    op.drop_table('mue')
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_question_id'))

    op.drop_table('event')
    with op.batch_alter_table('code_relation', schema=None) as batch_op:
        batch_op.drop_index('ix_relation_code')

    op.drop_table('code_relation')
    op.drop_table('code_family')
    with op.batch_alter_table('code', schema=None) as batch_op:
        batch_op.drop_index('ix_code_family')

    op.drop_table('code')
    with op.batch_alter_table('question', schema=None) as batch_op:
        batch_op.drop_index('ix_question_status_id')
        batch_op.drop_index('ix_question_sender_received')
        batch_op.drop_index(batch_op.f('ix_question_received_at'))

    op.drop_table('question')
    op.drop_table('code_release')
    op.drop_table('checkpoint')
