"""question.purged_at: when the retention policy removed the question's mail and bodies; an index of
what it may still purge

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("question", schema=None) as batch_op:
        batch_op.add_column(sa.Column("purged_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    # Retention's query reads only what it may still purge, however many rows were purged before.
    op.create_index("ix_question_unpurged", "question", ["status", "updated_at"],
                    sqlite_where=sa.text("purged_at IS NULL"), postgresql_where=sa.text("purged_at IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_question_unpurged", table_name="question")
    with op.batch_alter_table("question", schema=None) as batch_op:
        batch_op.drop_column("purged_at")
