"""What common modifiers mean, in the project's own plain words (starter notes, not official text)."""
from __future__ import annotations

MEANINGS: dict[str, str] = {
    "22": "The procedure took substantially more work than usual; document why.",
    "24": "An unrelated E/M visit during the postoperative period of another procedure.",
    "25": "A significant E/M service beyond the usual pre- and post-procedure work, on the same day "
          "as a procedure or other service; the notes must support a separate visit.",
    "26": "The professional part only (the reading and report), when someone else owns the equipment.",
    "50": "The same procedure done on both sides in one session.",
    "51": "More than one procedure in one session; payers usually reduce the later ones.",
    "52": "The service was cut short or reduced at the physician's choice.",
    "53": "The procedure was stopped after it began because of a risk to the patient.",
    "57": "The E/M visit at which the decision for a major surgery was made.",
    "58": "A planned or more extensive follow-on procedure during a global period.",
    "59": "A distinct service that is normally bundled with another one, justified by a separate site, "
          "session, lesion or injury. Use an X modifier (XE, XS, XP, XU) instead when one fits.",
    "62": "Two surgeons, each doing a distinct part of one procedure.",
    "76": "The same procedure repeated on the same day by the same physician.",
    "77": "The same procedure repeated on the same day by a different physician.",
    "78": "An unplanned return to the operating room for a related problem during a global period.",
    "79": "An unrelated procedure by the same physician during a global period.",
    "80": "An assistant surgeon.",
    "91": "A lab test repeated on the same day to get a new result, not to fix an error.",
    "95": "A synchronous telehealth service over real-time audio and video.",
    "XE": "A separate encounter: the service happened at a different session on the same day.",
    "XS": "A separate structure: a different organ or anatomic site.",
    "XP": "A separate practitioner: a different person performed the service.",
    "XU": "An unusual non-overlapping service that does not fit the other X modifiers.",
    "RT": "Right side of the body.",
    "LT": "Left side of the body.",
    "TC": "The technical part only (equipment, staff and supplies), without the reading.",
    "GA": "A waiver of liability (an ABN) is on file for this service.",
    "GZ": "The service is expected to be denied and no ABN was signed.",
    "GY": "The item or service is statutorily excluded or not a Medicare benefit.",
    "KX": "The documentation needed by the payer's policy is on file.",
    "JW": "Drug amount that was discarded from a single-dose vial.",
    "JZ": "No drug was discarded from the single-dose vial.",
    "QW": "A test waived under CLIA.",
}


def meaning(modifier: str) -> str | None:
    return MEANINGS.get(modifier.upper())
