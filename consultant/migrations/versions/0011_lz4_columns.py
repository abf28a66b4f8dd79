"""PostgreSQL: the long values written for every question (its texts and analysis, the reply's text
and HTML, the raw mail) compressed with lz4 instead of the default pglz, where the server has lz4
(PostgreSQL 14 and later, built with it, as Debian's is). Compressing them with pglz was most of
the time the server took to store a batch; lz4 is several times faster and reads back the same.
Values stored before keep their compression. SQLite stores these as they are: nothing to do.

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

COLUMNS = {"question": ("new_text", "quoted_text", "codes", "analysis"),
           "reply": ("text", "html", "edited_text"),
           "raw_message": ("raw",)}


def _has_lz4(bind) -> bool:
    if bind.dialect.name != "postgresql" or (bind.dialect.server_version_info or (0,)) < (14,):
        return False
    row = bind.execute(sa.text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")).first()
    return row is not None and "lz4" in (row[0] or [])


def _set(method: str) -> None:
    bind = op.get_bind()
    if not _has_lz4(bind):
        return
    for table, columns in COLUMNS.items():
        for column in columns:
            op.execute(f'ALTER TABLE {table} ALTER COLUMN "{column}" SET COMPRESSION {method}')


def upgrade() -> None:
    _set("lz4")


def downgrade() -> None:
    _set("default")
