"""code_search: full-text index over code titles, our descriptions and licensed descriptors

SQLite gets an FTS5 table (porter stemming), PostgreSQL a table with a weighted tsvector and a GIN
index. Neither is a model: `consultant.textsearch` fills and queries it, and rebuilds it whenever a
release of codes or descriptors is loaded.

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE code_search USING fts5("
                   "system UNINDEXED, code UNINDEXED, title, body, tokenize = 'porter unicode61')")
    else:
        op.execute("CREATE TABLE code_search (system varchar(12) NOT NULL, code varchar(10) NOT NULL, "
                   "title text NOT NULL, body text, doc tsvector NOT NULL)")
        op.execute("CREATE INDEX ix_code_search_doc ON code_search USING gin (doc)")
    # A database upgraded from 0002 already holds codes: index them now. (The one place a
    # migration calls project code: the index is derived data, rebuilt the same way on every load.)
    from consultant.textsearch import reindex_connection

    reindex_connection(op.get_bind())


def downgrade() -> None:
    op.execute("DROP TABLE code_search")
