"""service runs: what each poll and send run did and whether IMAP and SMTP answered (operator view)

Also an index on event(to_status, at, from_status, action) for the activity charts, review times and reviewer figures.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("finished_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("server_ok", sa.Boolean(), nullable=True),
        sa.Column("idle", sa.Boolean(), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("service_run", schema=None) as batch_op:
        batch_op.create_index("ix_service_run_job_finished", ["job", "finished_at"], unique=False)
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index("ix_event_to_status_at", ["to_status", "at", "from_status", "action"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index("ix_event_to_status_at")
    with op.batch_alter_table("service_run", schema=None) as batch_op:
        batch_op.drop_index("ix_service_run_job_finished")
    op.drop_table("service_run")
