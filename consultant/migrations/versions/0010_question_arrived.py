"""question.arrived_at: when the mail server got the message (IMAP INTERNALDATE); the rate limits
count by it, so a backlog fetched at once after an outage is not taken for a flood

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("question", schema=None) as batch_op:
        batch_op.add_column(sa.Column("arrived_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    # What was stored before came in when it was stored, as far as we know.
    op.execute("UPDATE question SET arrived_at = received_at")
    with op.batch_alter_table("question", schema=None) as batch_op:
        batch_op.drop_index("ix_question_sender_received")
        batch_op.create_index("ix_question_sender_arrived", ["from_addr", "arrived_at"], unique=False)
        batch_op.create_index("ix_question_status_arrived", ["status", "arrived_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("question", schema=None) as batch_op:
        batch_op.drop_index("ix_question_status_arrived")
        batch_op.drop_index("ix_question_sender_arrived")
        batch_op.create_index("ix_question_sender_received", ["from_addr", "received_at"], unique=False)
        batch_op.drop_column("arrived_at")
