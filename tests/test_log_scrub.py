"""logs.scrub skips the identifier patterns only on a line that cannot hold an identifier: the same
lines out as running every pattern on every line, over generated lines built from the patterns' own
words, identifiers, addresses, database echoes and non-ASCII look-alikes."""
import random
import re

from consultant import logs, redact
from consultant.logs import may_hold_identifier, scrub
from consultant.redact import mask, spans

# Every word in the sources of the identifier patterns (labels, ID words, months), so a label added
# there and not to logs' list shows up here as a difference.
PATTERN_WORDS = sorted({w for _, p in redact.PATTERNS for w in re.findall(r"[a-z]{2,}", p.pattern)})
EXTRA = ["MR#", "SS#", "D.O.B.", "acct#", "Member #:", "no.", "ID:", "x", "ext.", "+1", "(404)", "is", "was"]
DIGITS = ["123-45-6789", "123 45 6789", "00123456", "W123456789", "01/02/1960", "1960-01-02", "555-0199",
          "404.555.0199", "4045550199", "12-3456", "99213", "2026", "7", "62303-01", "30303-1234"]
CONTEXT = ["question", "drafted as", "answer", "INFO consultant.vet:", "2026-11-29 08:24:40,123", "quarantined at",
           "parse:", "sent to", "ignored by", "auto-reply", "(server text not logged)", "uid", "batch of"]
ODD = ["jane.doe@clinic.test", "[parameters: (1, 'Ann')]", "\n  DETAIL:  Key (x)=(Ann) exists.", "ſsn", "MRN",
       "K", "İd", "ﬁ", "é", "\u2028", "\t", "  "]
SEPARATORS = [" ", " ", " ", "", ": ", "-", ".", "\n", ", ", "#"]


def old_scrub(text: str) -> str:
    """Every pattern on every line: what scrub did before it looked first."""
    for pattern, replacement in logs._ECHOED:
        text = pattern.sub(replacement, text)
    return mask(logs.redact(text)) or ""


def variant(rnd: random.Random, word: str) -> str:
    return rnd.choice([word, word.upper(), word.title(), word.lower()])


def line(rnd: random.Random) -> str:
    parts = []
    for _ in range(rnd.randrange(1, 9)):
        pool = rnd.choices([PATTERN_WORDS, EXTRA, DIGITS, CONTEXT, ODD], weights=[3, 1, 3, 4, 1])[0]
        parts.append(variant(rnd, rnd.choice(pool)))
        parts.append(rnd.choice(SEPARATORS))
    return "".join(parts)


def test_generated_lines_come_out_as_with_every_pattern():
    rnd = random.Random(1129)
    skipped = masked = 0
    for _ in range(30000):
        text = line(rnd)
        assert scrub(text) == old_scrub(text), text
        if may_hold_identifier(text):
            masked += spans(text) != []
        else:
            skipped += 1
            assert spans(text) == [], text
    assert skipped > 3000 and masked > 3000  # both ways taken many times


def test_each_label_of_the_patterns_before_each_kind_of_value_comes_out_as_with_every_pattern():
    labels = PATTERN_WORDS + EXTRA + ["health plan", "medical record", "social security", "date of birth", "birth date"]
    tried = changed = 0
    for label in labels:
        for joiner in (" ", ": ", " # ", " id ", " number is ", "-", " no. "):
            for value in DIGITS + ["March 3, 1955", "4 July 1950"]:
                for text in (f"{label}{joiner}{value}", f"question 7 {label.upper()}{joiner}{value}."):
                    out = scrub(text)
                    assert out == old_scrub(text), text
                    tried, changed = tried + 1, changed + (out != text)
    assert tried > 10000 and changed > 2000


def test_what_the_worker_logs_skips_the_patterns_and_an_identifier_never_does():
    for plain in ("2026-11-29 08:24:40,123 INFO consultant.vet: question 4711 drafted as answer",
                  "2026-11-29 08:24:40,123 INFO consultant.vet: question 12 quarantined at parse: too many codes"):
        assert not may_hold_identifier(plain) and scrub(plain) == plain
    for risky in ("question 7 drafted as MRN 00123456", "question 7: call 404 555-0199", "question 7 SSN 123 45 6789",
                  "question 7 from ſſn 00123456", "dob: 1/2/60", "policy # A12345", "fax 4045550199"):
        assert may_hold_identifier(risky)
        assert scrub(risky) != risky and scrub(risky) == old_scrub(risky)
