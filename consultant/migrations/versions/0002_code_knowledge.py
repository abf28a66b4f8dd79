"""code knowledge

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 06:10:54.148456
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('code_descriptor',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('system', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('effective', sa.Date(), nullable=True),
    sa.Column('end_date', sa.Date(), nullable=True),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
    sa.Column('release_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['release_id'], ['code_release.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('code_descriptor', schema=None) as batch_op:
        batch_op.create_index('ix_descriptor_code', ['system', 'code'], unique=False)

    op.create_table('fee_rule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('modifier', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
    sa.Column('status_code', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
    sa.Column('global_days', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=True),
    sa.Column('mult_proc', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
    sa.Column('bilat_surg', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
    sa.Column('asst_surg', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
    sa.Column('co_surg', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
    sa.Column('team_surg', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
    sa.Column('release_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['release_id'], ['code_release.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('fee_rule', schema=None) as batch_op:
        batch_op.create_index('ix_fee_rule_code', ['code'], unique=False)

    with op.batch_alter_table('code', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parent', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True))
        batch_op.add_column(sa.Column('notes', sa.JSON(), nullable=True))

    with op.batch_alter_table('code_release', schema=None) as batch_op:
        batch_op.add_column(sa.Column('file_name', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True))

    with op.batch_alter_table('ptp_edit', schema=None) as batch_op:
        batch_op.add_column(sa.Column('prior_1996', sa.Boolean(), nullable=False, server_default=sa.false()))



def downgrade() -> None:
    with op.batch_alter_table('ptp_edit', schema=None) as batch_op:
        batch_op.drop_column('prior_1996')

    with op.batch_alter_table('code_release', schema=None) as batch_op:
        batch_op.drop_column('file_name')

    with op.batch_alter_table('code', schema=None) as batch_op:
        batch_op.drop_column('notes')
        batch_op.drop_column('parent')

    with op.batch_alter_table('fee_rule', schema=None) as batch_op:
        batch_op.drop_index('ix_fee_rule_code')

    op.drop_table('fee_rule')
    with op.batch_alter_table('code_descriptor', schema=None) as batch_op:
        batch_op.drop_index('ix_descriptor_code')

    op.drop_table('code_descriptor')
