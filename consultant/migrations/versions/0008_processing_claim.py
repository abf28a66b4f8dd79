"""processing claim: which worker is screening, parsing and drafting a question, and until when

Several workers on one PostgreSQL claim batches of waiting questions (FOR UPDATE SKIP LOCKED) and
mark them with a short lease, so the others skip them instead of counting an attempt on them too.

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("question", schema=None) as batch_op:
        batch_op.add_column(sa.Column("processing_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True))
        batch_op.add_column(sa.Column("processing_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("question", schema=None) as batch_op:
        batch_op.drop_column("processing_until")
        batch_op.drop_column("processing_by")
