"""Sender authentication: the Authentication-Results parser, and the screen rule that holds mail our
own server did not vouch for, so nobody gets an answer sent to someone else's address."""
import pytest
from hypothesis import given, settings as hsettings, strategies as st
from sqlalchemy import select
from sqlmodel import Session

from consultant import authres, operator, stats
from consultant.models import Question, Reply, utcnow
from consultant.process import Processor
from consultant.screen import headers_of, screen
from support import make_settings, question_bytes

MX = "mx.caseconsultant.test"  # our server's authserv-id in these tests
JANE = "jane@ridgeview-clinic.test"


def asked(*results: str, n: int = 1, sender: str = JANE) -> bytes:
    """A question as our server would pass it on: the Authentication-Results fields on top, in order."""
    return b"".join(f"Authentication-Results: {r}\r\n".encode() for r in results) + question_bytes(n, sender=sender)


def verdict(raw: bytes, policy: str = "dmarc", **extra):
    settings = make_settings(screen=dict({"sender_auth": policy, "authserv_id": MX}, **extra))
    return screen(headers_of(raw), settings)


# --- the parser -------------------------------------------------------------------------------

def test_a_server_that_checked_nothing_says_none():
    found = authres.parse("mx.clinic.test; none")
    assert (found.authserv_id, found.none, found.results, found.problem) == ("mx.clinic.test", True, (), "")


def test_each_method_its_result_reason_and_properties_are_read():
    found = authres.parse('border.clinic.test 1; auth=pass (cram-md5) smtp.auth=desk@clinic.test;\r\n'
                          '\tspf=pass smtp.mailfrom=clinic.test;\r\n'
                          '\tdkim=pass reason="good signature" header.i=@relay.clinic.test;\r\n'
                          '\tdkim=fail reason="bad signature" header.i=@branch.clinic.test')
    assert (found.authserv_id, found.version) == ("border.clinic.test", 1)
    assert [(r.method, r.result) for r in found.results] == [
        ("auth", "pass"), ("spf", "pass"), ("dkim", "pass"), ("dkim", "fail")]
    auth, spf, good, bad = found.results
    assert auth.comments == ("cram-md5",) and auth.prop("smtp.auth") == "desk@clinic.test"
    assert spf.props == {"smtp.mailfrom": "clinic.test"}
    assert (good.reason, good.prop("header.i")) == ("good signature", "@relay.clinic.test")
    assert (bad.reason, bad.prop("HEADER.I")) == ("bad signature", "@branch.clinic.test")


def test_comments_quoted_strings_versions_and_odd_spacing_are_read_like_the_plain_form():
    plain = authres.parse("mx.clinic.test; dkim=pass header.d=clinic.test; dmarc=fail header.from=clinic.test")
    odd = authres.parse('(first hop) "mx.clinic.test" (a (nested) note)  ;dkim / 1 =  (checked) PASS\r\n'
                        ' header . d = "clinic.test"   ;  dmarc=Fail (p=REJECT sp=none) header.from=clinic.test ;')
    assert odd.authserv_id == plain.authserv_id
    assert [(r.method, r.result, r.props) for r in odd.results] == [
        (r.method, r.result, r.props) for r in plain.results]
    assert odd.of("dmarc")[0].comments == ("p=REJECT sp=none",)


@pytest.mark.parametrize("value,problem", [
    ("", "no authserv-id"),
    (";;;", "no authserv-id"),
    ("mx.clinic.test; dkim=pass (unclosed", "unclosed"),
    ("mx.clinic.test; =pass; reason=odd", "not method=result"),
    ("mx.clinic.test; dkim=pass header.d=clinic.test" + " x" * 5000, "longer than"),
])
def test_broken_fields_say_what_could_not_be_read(value, problem):
    assert problem in authres.parse(value).problem


def test_an_overlong_field_yields_no_results_at_all():
    """The end was cut off: a "dkim=fail" after the cut must not leave a "pass" standing alone."""
    found = authres.parse("mx.clinic.test; dkim=pass header.d=clinic.test; " + "spf=none; " * 2000)
    assert found.authserv_id == "mx.clinic.test" and found.results == ()


@hsettings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from('ab.=;() "\\\t\r\n@/x1é\x00'), max_size=200) | st.text(max_size=300))
def test_the_parser_never_raises_on_any_text(value):
    found = authres.parse(value)
    assert isinstance(found, authres.AuthResults)
    assert len(found.results) <= authres.MAX_RESULTS


@pytest.mark.parametrize("a,b,same", [
    ("clinic.test", "clinic.test", True),
    ("mail.clinic.test", "CLINIC.test.", True),
    ("jane@Ridgeview.Clinic.test", "@clinic.test", True),
    ("a.clinic.test", "b.clinic.test", False),  # siblings: no public-suffix list to vouch for them
    ("evilclinic.test", "clinic.test", False),
    ("clinic.test", "test", False),
    ("", "clinic.test", False),
])
def test_relaxed_alignment_by_suffix(a, b, same):
    assert authres.aligned(a, b) is same


# --- the rule -------------------------------------------------------------------------------

def test_with_sender_auth_off_nothing_is_checked():
    assert verdict(asked(), policy="off", authserv_id="").action == "pass"


def test_dmarc_pass_from_our_server_lets_the_question_through():
    raw = asked(f"{MX}; spf=pass smtp.mailfrom=ridgeview-clinic.test; dmarc=pass header.from=ridgeview-clinic.test")
    assert verdict(raw).action == "pass"


def test_dmarc_fail_is_quarantined_with_a_reason_an_operator_can_read():
    raw = asked(f"{MX}; dkim=none; dmarc=fail (p=reject dis=none) header.from=ridgeview-clinic.test")
    result = verdict(raw)
    assert (result.action, result.rule) == ("quarantine", "sender_auth")
    assert result.reason == f"sender authentication failed: dmarc=fail (p=reject) from our server {MX}"


def test_a_forged_field_naming_another_server_is_ignored_however_good_it_looks():
    forged = "mx.forger.test; dmarc=pass header.from=ridgeview-clinic.test; dkim=pass header.d=ridgeview-clinic.test"
    result = verdict(asked(forged))
    assert result.action == "quarantine"
    assert result.reason == (f"sender authentication missing: no Authentication-Results from our server {MX} "
                             "(screen.sender_auth = dmarc)")
    ours = f"{MX.upper()}; dmarc=fail header.from=ridgeview-clinic.test"
    assert "dmarc=fail" in verdict(asked(forged, ours)).reason  # the name is compared without case


def test_only_the_topmost_field_of_our_server_counts_not_copies_that_came_with_the_message():
    ours = f"{MX}; dmarc=fail (p=quarantine) header.from=ridgeview-clinic.test"
    planted = f"{MX}; dmarc=pass header.from=ridgeview-clinic.test"
    assert "dmarc=fail (p=quarantine)" in verdict(asked(ours, planted)).reason
    assert verdict(asked(planted, ours)).action == "pass"  # what the top one says is what counts


@pytest.mark.parametrize("results,reason", [
    ([f"{MX}; none"], "checked nothing"),
    ([f"{MX}; spf=pass smtp.mailfrom=ridgeview-clinic.test"], "gave no dmarc result"),
    ([f"{MX}; dmarc=pass header.from=forger.test"], "reported dmarc for forger.test, not for the From domain"),
    ([f"{MX}; dmarc=pass (unclosed"], "unreadable"),
])
def test_when_our_server_did_not_vouch_under_dmarc_the_mail_is_held(results, reason):
    result = verdict(asked(*results))
    assert result.action == "quarantine" and reason in result.reason


def test_dmarc_none_or_temperror_is_not_a_failure():
    for said in ("none", "temperror"):
        assert verdict(asked(f"{MX}; dmarc={said} header.from=ridgeview-clinic.test")).action == "pass"


@pytest.mark.parametrize("results,passes", [
    ("dkim=pass header.d=ridgeview-clinic.test; spf=fail smtp.mailfrom=ridgeview-clinic.test", True),
    ("dkim=fail header.d=ridgeview-clinic.test; spf=pass smtp.mailfrom=bounces.ridgeview-clinic.test", True),
    ("dkim=pass header.i=@mail.ridgeview-clinic.test; spf=none", True),
    ("dkim=pass header.d=bulk-mailer.test; spf=pass smtp.mailfrom=bulk-mailer.test", False),
    ("dkim=pass; spf=pass smtp.helo=mx.ridgeview-clinic.test", False),  # no domain to align
    ("dkim=fail header.d=ridgeview-clinic.test; spf=softfail smtp.mailfrom=ridgeview-clinic.test", False),
])
def test_dkim_spf_needs_a_pass_aligned_with_the_from_domain(results, passes):
    result = verdict(asked(f"{MX}; {results}"), policy="dkim_spf")
    assert (result.action == "pass") is passes, result.reason


def test_a_dkim_spf_failure_says_what_our_server_found():
    result = verdict(asked(f"{MX}; dkim=pass header.d=bulk-mailer.test; spf=softfail smtp.mailfrom=x.test"),
                     policy="dkim_spf")
    assert result.reason == ("sender authentication failed: neither dkim nor spf passed for ridgeview-clinic.test "
                             f"(dkim=pass for bulk-mailer.test, spf=softfail) from our server {MX}")


def test_two_from_fields_are_held_whatever_our_server_says():
    raw = b"From: someone@forger.test\r\n" + asked(f"{MX}; dmarc=pass header.from=ridgeview-clinic.test")
    assert "2 From fields" in verdict(raw).reason


def test_machine_mail_is_still_ignored_before_the_sender_is_checked():
    result = verdict(b"Auto-Submitted: auto-replied\r\n" + asked())
    assert (result.action, result.rule) == ("ignore", "auto_submitted")


# --- end to end --------------------------------------------------------------------------------

def test_forged_mail_is_held_with_its_reason_and_an_operator_can_release_it(engine, db_url):
    settings = make_settings(db_url, screen={"sender_auth": "dmarc", "authserv_id": MX})
    good = asked(f"{MX}; dmarc=pass header.from=ridgeview-clinic.test", n=1)
    forged = asked(f"{MX}; dmarc=fail (p=reject) header.from=ridgeview-clinic.test",
                   "mx.forger.test; dmarc=pass header.from=ridgeview-clinic.test", n=2)
    with Session(engine) as session:
        ids = [operator.inject(session, raw, "test", "auth.eml") for raw in (good, forged)]
        session.commit()
    with Processor(engine, settings) as processor:
        processor.run_until_done()
    with Session(engine) as session:
        first, second = (session.get(Question, qid) for qid in ids)
        assert (first.status, second.status, second.stage) == ("drafted", "quarantined", "screen")
        assert second.reason == f"sender authentication failed: dmarc=fail (p=reject) from our server {MX}"
        assert session.execute(select(Reply.question_id)).scalars().all() == [ids[0]]
        held = stats.held_back(session, utcnow())
        assert held["counts"]["sender_auth"] == dict(setting="screen.sender_auth", hour=1, day=1)
        assert [(h["id"], h["sender"]) for h in held["items"]] == [(ids[1], "j***@ridgeview-clinic.test")]
        operator.requeue(session, ids[1], "olivia")  # the operator checked it with the sender
        session.commit()
    with Processor(engine, settings) as processor:
        processor.run_until_done()
    with Session(engine) as session:
        assert session.get(Question, ids[1]).status == "drafted"
