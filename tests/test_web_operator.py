"""The operator's view: figures and charts, and requeue/retry from the quarantine and failed lists."""
from pathlib import Path

import pytest
from sqlmodel import Session

from consultant import review, states
from consultant.models import Question
from support import drafted, question_bytes
from websupport import add_people, post, signed_in, web_settings

NO_FROM = Path(__file__).resolve().parent.parent / "mailbox_fixtures" / "47-quarantined-no-from.eml"


@pytest.fixture
def settings(db_url):
    return web_settings(db_url)


@pytest.fixture
def olivia(settings, engine):
    add_people(engine, {"olivia": "operator", "alice": "reviewer"})
    return signed_in(settings, engine, "olivia")


def status(engine, qid):
    with Session(engine) as session:
        return session.get(Question, qid).status


def failed_question(engine, settings) -> int:
    qid = drafted(engine, settings, question_bytes(7))
    with Session(engine) as session:
        review.approve(session, qid, "alice", 30)
        states.transition(session, qid, "approved", "sending", "sender")
        states.transition(session, qid, "sending", "failed", "sender", "550 mailbox unavailable")
        session.commit()
    return qid


def test_the_operator_page_shows_counts_charts_and_reviewer_figures(engine, settings, olivia):
    qid = drafted(engine, settings, question_bytes(1))
    with Session(engine) as session:
        review.approve(session, qid, "alice", 30)
        session.commit()
    html = olivia.get("/operator").text
    assert 'id="op-waiting">0<' in html
    assert '<figure class="chart" id="chart-hourly"><svg' in html and '<figure class="chart" id="chart-daily"><svg' in html
    assert "<td>approved</td><td class=\"num\">1</td>" in html
    assert "<td>alice</td>" in html  # reviewer figures
    assert "Last poll:" in html and "IMAP:" in html


def test_a_quarantined_question_is_listed_with_its_reason_and_can_be_requeued(engine, settings, olivia):
    qid = drafted(engine, settings, NO_FROM.read_bytes())
    assert status(engine, qid) == "quarantined"
    html = olivia.get("/operator").text
    assert f'action="/operator/requeue/{qid}"' in html
    response = post(olivia, f"/operator/requeue/{qid}", page="/operator")
    assert response.headers["location"] == "/operator?msg=requeued"
    assert status(engine, qid) == "received"


def test_a_failed_reply_can_be_retried(engine, settings, olivia):
    qid = failed_question(engine, settings)
    html = olivia.get("/operator").text
    assert f'action="/operator/retry/{qid}"' in html and "550 mailbox unavailable" in html
    assert post(olivia, f"/operator/retry/{qid}", page="/operator").status_code == 303
    assert status(engine, qid) == "approved"


def test_requeueing_what_is_not_quarantined_is_refused_with_the_reason(engine, settings, olivia):
    qid = drafted(engine, settings, question_bytes(2))
    refused = post(olivia, f"/operator/requeue/{qid}", page="/operator")
    assert refused.status_code == 409 and "not quarantined" in refused.text
    assert post(olivia, "/operator/retry/999999", page="/operator").status_code == 409
