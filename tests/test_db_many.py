"""db.execute_many: rows stored exactly as SQLAlchemy's own executemany stores them (datetimes,
JSON, booleans, column defaults), on SQLite and PostgreSQL, and bad values refused the same way."""
import random
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.exc import SQLAlchemyError, StatementError
from sqlmodel import Session

from consultant import db
from consultant.db import execute_many, insert_returning
from consultant.models import Event, Question, Reply
from consultant.states import _create_statement

JSON_COLUMNS = ("attachments", "defects", "codes", "modifiers", "analysis")
TIME_COLUMNS = ("received_at", "arrived_at", "updated_at", "sent_date", "claimed_until")


def random_time(rnd: random.Random) -> datetime | None:
    if rnd.random() < 0.1:
        return None
    zone = timezone(timedelta(minutes=rnd.choice([0, 60, -300, 330, 825, -720])))
    value = datetime(rnd.choice([2, 999, 1970, 2026, 9997]), rnd.randint(1, 12), rnd.randint(1, 28),
                     rnd.randint(0, 23), rnd.randint(0, 59), rnd.randint(0, 59), rnd.choice([0, 1, 999999, 123456]),
                     tzinfo=zone)
    return value.astimezone(timezone.utc) if rnd.random() < 0.5 else value


STRING_BITS = ["a", " ", '"', "\\", "\n", "é", "\u2028", "😀", "\x00", "<"]


def random_json(rnd: random.Random, depth: int = 0):
    kind = rnd.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rnd.choice([0, -7, 2 ** 40, 1.5, 1e-9, float(rnd.randint(0, 9)), True, False])
    if kind in (2, 3, 4):
        return "".join(rnd.choice(STRING_BITS) for _ in range(rnd.randrange(6)))
    if kind in (5, 6):
        return [random_json(rnd, depth + 1) for _ in range(rnd.randrange(4))]
    return {random_json(rnd, 3) or "k": random_json(rnd, depth + 1) for _ in range(rnd.randrange(4))}


def question_rows(rnd: random.Random, tag: str, count: int) -> list[dict]:
    rows = []
    for n in range(count):
        row = dict(status="received", dedupe_key=f"<{tag}{n}@t>", size=rnd.randrange(10 ** 6),
                   body_downloaded=rnd.random() < 0.5, subject=rnd.choice([None, "", "Ré: 99213 \"x\""]),
                   uid=rnd.choice([None, n]))
        row.update({name: random_time(rnd) for name in TIME_COLUMNS})
        row["received_at"] = row["received_at"] or datetime.now(timezone.utc)
        row["updated_at"] = row["updated_at"] or datetime.now(timezone.utc)
        row.update({name: random_json(rnd) for name in JSON_COLUMNS})
        rows.append(row)
    return rows


STORED = ("status", "size", "body_downloaded", "subject", "uid", "attempts", *TIME_COLUMNS, *JSON_COLUMNS)


def stored(connection, first_id: int) -> list[tuple]:
    """The values as the database holds them (no type processing on the way back)."""
    columns = ", ".join(STORED)
    return [tuple(row) for row in connection.exec_driver_sql(
        f"SELECT {columns} FROM question WHERE id >= {int(first_id)} ORDER BY id")]


@pytest.mark.parametrize("parameters", [None, 1000])  # PostgreSQL: rows per statement, as few or many
def test_inserts_store_what_sqlalchemy_stores(engine, parameters, monkeypatch):
    if parameters:
        monkeypatch.setattr(db, "PG_PARAMETERS", parameters)
    for round_ in range(4):
        rows = question_rows(random.Random(round_), f"r{round_}-", 60)
        with engine.begin() as connection:
            start = connection.execute(select(Question.id).order_by(Question.id.desc())).scalar() or 0
            connection.execute(insert(Question), rows)
            theirs = stored(connection, start + 1)
            middle = connection.execute(select(Question.id).order_by(Question.id.desc())).scalar()
            statements = []

            def count(_conn, _cursor, sql, params, _context, many):
                runs = params if many else [params]
                statements.append((sql.count("), (") + 1, len(runs), max(len(p) for p in runs)))

            event.listen(connection, "before_cursor_execute", count)
            execute_many(connection, insert(Question), [dict(row, dedupe_key="x" + row["dedupe_key"]) for row in rows])
            event.remove(connection, "before_cursor_execute", count)
            ours = stored(connection, middle + 1)
            keys = connection.execute(select(Question.dedupe_key).where(Question.id > middle)
                                      .order_by(Question.id)).scalars().all()
        assert len(ours) == 60 and ours == theirs
        assert keys == ["x" + row["dedupe_key"] for row in rows]  # in the order given, ids rising
        if engine.dialect.name == "postgresql":  # multi-row statements: a page of rows each, then the rest
            assert sum(rows * runs for rows, runs, _ in statements) == 60 and len(statements) <= 2
            assert statements[0][0] > 1 and all(most <= db.PG_PARAMETERS for _, _, most in statements)
        else:
            assert [(rows, runs) for rows, runs, _ in statements] == [(1, 60)]  # one executemany
        assert {row[STORED.index("attempts")] for row in ours} == {0}  # its column default


def test_updates_store_what_sqlalchemy_stores(engine):
    rows = question_rows(random.Random(3), "u", 80)
    with engine.begin() as connection:
        connection.execute(insert(Question), rows)
        ids = connection.execute(select(Question.id).order_by(Question.id)).scalars().all()
        inserted = stored(connection, ids[0])
    statement = (update(Question).where(Question.id == bindparam("w_id"))
                 .values({name: bindparam(f"v_{name}", type_=Question.__table__.c[name].type)
                          for name in (*TIME_COLUMNS, *JSON_COLUMNS, "body_downloaded")}))
    changes = question_rows(random.Random(4), "v", 80)
    params = [dict({f"v_{name}": change[name] for name in (*TIME_COLUMNS, *JSON_COLUMNS, "body_downloaded")},
                   w_id=qid) for qid, change in zip(ids, changes)]
    with engine.begin() as connection:
        connection.execute(statement, params[:40])
        execute_many(connection, statement, params[40:])
        got = stored(connection, ids[0])
    with engine.begin() as connection:
        connection.execute(statement, params[40:])
        expected = stored(connection, ids[0])
    assert got == expected
    assert all(new != old for new, old in zip(got, inserted))  # the updates did change them


def test_an_update_that_picks_a_row_twice_runs_row_by_row(engine):
    statement = (update(Question).where(Question.id == bindparam("w_id"), Question.status == bindparam("w_status"))
                 .values(status=bindparam("v_status"), subject=bindparam("v_subject")))
    with engine.begin() as connection:
        qid = connection.execute(insert(Question).returning(Question.id),
                                 dict(status="received", dedupe_key="<twice@t>")).scalar_one()
        other = connection.execute(insert(Question).returning(Question.id),
                                   dict(status="received", dedupe_key="<other@t>")).scalar_one()
        execute_many(connection, statement, [
            dict(w_id=qid, w_status="received", v_status="parsed", v_subject="first"),
            dict(w_id=other, w_status="parsed", v_status="drafted", v_subject="not this one"),  # not at that status
            dict(w_id=qid, w_status="parsed", v_status="drafted", v_subject="second")])  # sees the first change
        rows = dict(connection.execute(select(Question.id, Question.subject).where(Question.id.in_([qid, other]))).all())
        statuses = dict(connection.execute(select(Question.id, Question.status)
                                           .where(Question.id.in_([qid, other]))).all())
    assert rows == {qid: "second", other: None} and statuses == {qid: "drafted", other: "received"}


def test_column_defaults_are_filled_as_sqlalchemy_fills_them(engine):
    with engine.begin() as connection:
        ids = connection.execute(insert(Question).returning(Question.id, sort_by_parameter_order=True),
                                 [dict(status="drafted", dedupe_key=f"<d{n}@t>") for n in range(3)]).scalars().all()
        before = datetime.now(timezone.utc)
        execute_many(connection, insert(Reply), [
            dict(question_id=qid, kind="answer", to_addr="a@t", subject="s", text="t", html="h",
                 message_id=f"<m{qid}@t>")
            for qid in ids])
        execute_many(connection, insert(Event), [dict(question_id=ids[0], actor="t", action="note")])
    with engine.connect() as connection:
        replies = connection.execute(select(Reply).order_by(Reply.id)).all()
        event = connection.execute(select(Event).where(Event.action == "note")).one()
    assert [(r.purpose, r.to_send, r.send_attempts) for r in replies] == [("answer", False, 0)] * 3
    assert all(before <= r.created_at.replace(tzinfo=timezone.utc) <= datetime.now(timezone.utc) for r in replies)
    assert before <= event.at.replace(tzinfo=timezone.utc)


@pytest.mark.parametrize("bad", [datetime(2026, 1, 1), "yesterday"])
def test_a_value_the_column_type_refuses_is_a_sqlalchemy_error(engine, bad):
    with engine.begin() as connection:
        with pytest.raises(SQLAlchemyError) as raised:
            execute_many(connection, insert(Question), [dict(status="received", dedupe_key="<b@t>", sent_date=bad)])
        with pytest.raises(StatementError):
            connection.execute(insert(Question), [dict(status="received", dedupe_key="<b@t>", sent_date=bad)])
    assert isinstance(raised.value, StatementError)


def test_a_row_the_database_refuses_fails_the_whole_statement(engine):
    rows = [dict(status="received", dedupe_key=f"<dup{n % 3}@t>") for n in range(5)]  # dedupe_key is unique
    with engine.connect() as connection:
        with pytest.raises(SQLAlchemyError):
            with connection.begin():
                execute_many(connection, insert(Question), rows)
        assert connection.execute(select(Question.id).where(Question.dedupe_key.like("<dup%"))).all() == []


def test_a_row_without_a_key_of_the_first_is_refused(engine):
    with engine.begin() as connection, pytest.raises(StatementError):
        execute_many(connection, insert(Question),
                     [dict(status="received", dedupe_key="<a@t>"), dict(status="received")])


def test_no_rows_run_nothing(engine):
    with engine.begin() as connection:
        assert execute_many(connection, insert(Question), []) is None


def test_insert_returning_pages_rows_and_returns_what_sqlalchemy_returns(engine):
    """Pages of 7 rows (so a page boundary falls inside a run of duplicates); keys stored already
    and keys repeated within the call are left out, as ON CONFLICT DO NOTHING does."""
    engine.dialect.insertmanyvalues_page_size = 7
    rows = question_rows(random.Random(5), "p", 40)
    for n in (3, 8, 9, 10, 30):
        rows[n]["dedupe_key"] = rows[n - 1]["dedupe_key"]
    rows = [dict(row, uid=None) for row in rows]
    with Session(engine) as session:
        connection = session.connection()
        insert_returning(connection, _create_statement(session), rows[:5])
        ours = insert_returning(connection, _create_statement(session), rows)
        first = ours and min(qid for qid, _ in ours)
        ours_stored = stored(connection, first)
        session.rollback()
    with Session(engine) as session:
        connection = session.connection()
        connection.execute(_create_statement(session), rows[:5]).all()
        theirs = [tuple(r) for r in connection.execute(_create_statement(session), rows)]
        theirs_stored = stored(connection, min(qid for qid, _ in theirs))
    assert sorted(key for _, key in ours) == sorted(key for _, key in theirs)
    assert len(ours) == 40 - 5 - 4 and len({qid for qid, _ in ours}) == len(ours)
    assert ours_stored == theirs_stored


def test_insert_returning_without_rows_returns_nothing(engine):
    with Session(engine) as session:
        assert insert_returning(session.connection(), _create_statement(session), []) == []
