"""question_code: one row per code found in a question, for the queue's code filter

Revision ID: 0007
Revises: 0006
"""
import json

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BATCH = 5000


def upgrade() -> None:
    op.create_table(
        "question_code",
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("system", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("quoted", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["question_id"], ["question.id"]),
        sa.PrimaryKeyConstraint("question_id", "system", "code"),
    )
    with op.batch_alter_table("question_code", schema=None) as batch_op:
        batch_op.create_index("ix_question_code_code", ["code", "question_id"], unique=False)
    _backfill(op.get_bind())


def _backfill(connection) -> None:
    """Questions parsed before this revision: their codes come from the JSON kept on the question."""
    question = sa.table("question", sa.column("id", sa.Integer), sa.column("codes", sa.Text))
    target = sa.table("question_code", sa.column("question_id", sa.Integer), sa.column("system", sa.String),
                      sa.column("code", sa.String), sa.column("quoted", sa.Boolean))
    last = 0
    while True:
        rows = connection.execute(sa.select(question.c.id, sa.cast(question.c.codes, sa.Text))
                                  .where(question.c.id > last, question.c.codes.is_not(None))
                                  .order_by(question.c.id).limit(BATCH)).all()
        if not rows:
            return
        found = {}
        for qid, codes in rows:
            for c in json.loads(codes) or []:
                key = (qid, c["system"], c["code"])
                found[key] = found.get(key, True) and bool(c.get("quoted"))
        if found:
            connection.execute(sa.insert(target), [dict(question_id=q, system=s, code=c, quoted=quoted)
                                                   for (q, s, c), quoted in found.items()])
        last = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("question_code", schema=None) as batch_op:
        batch_op.drop_index("ix_question_code_code")
    op.drop_table("question_code")
