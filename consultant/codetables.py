"""Tables of code knowledge: codes, families, relations, edit pairs, unit limits and releases."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel

from .models import utcnow


class Release(SQLModel, table=True):
    """One loaded data set; every fact names the release it came from."""

    __tablename__ = "code_release"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=30)  # starter, icd10cm, cpt, hcpcs, ncci-ptp, mue, pfs-rvu
    name: str = Field(max_length=200)
    file_name: str | None = Field(default=None, max_length=300)
    effective: str | None = Field(default=None, max_length=20)
    rows: int = 0
    loaded_at: datetime = Field(default_factory=utcnow)


class Family(SQLModel, table=True):
    __tablename__ = "code_family"

    key: str = Field(primary_key=True, max_length=60)
    system: str = Field(max_length=12)
    title: str = Field(max_length=200)
    range_start: str | None = Field(default=None, max_length=10)
    range_end: str | None = Field(default=None, max_length=10)
    summary: str | None = Field(default=None, sa_column=Column(Text))
    release_id: int | None = Field(default=None, foreign_key="code_release.id")


class Code(SQLModel, table=True):
    """A CPT, HCPCS Level II or ICD-10-CM code. ICD-10-CM codes are stored dotted."""

    __tablename__ = "code"
    __table_args__ = (Index("ix_code_family", "family"),)

    system: str = Field(primary_key=True, max_length=12)
    code: str = Field(primary_key=True, max_length=10)
    title: str = Field(sa_column=Column(Text, nullable=False))
    description: str | None = Field(default=None, sa_column=Column(Text))
    family: str | None = Field(default=None, max_length=60)
    addon: bool = False
    billable: bool = True
    status: str = Field(default="active", max_length=12)
    effective: date | None = None
    end_date: date | None = None
    parent: str | None = Field(default=None, max_length=10)  # ICD-10-CM: the code one level up
    notes: dict | None = Field(default=None, sa_column=Column(JSON))  # ICD-10-CM: excludes1, code_first...
    release_id: int | None = Field(default=None, foreign_key="code_release.id")


class Relation(SQLModel, table=True):
    """A link between two codes: add-on-of, see-also (siblings come from the family)."""

    __tablename__ = "code_relation"
    __table_args__ = (Index("ix_relation_code", "system", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    system: str = Field(max_length=12)
    code: str = Field(max_length=10)
    kind: str = Field(max_length=20)
    related_system: str = Field(max_length=12)
    related: str = Field(max_length=10)
    release_id: int | None = Field(default=None, foreign_key="code_release.id")


class PtpEdit(SQLModel, table=True):
    """An NCCI procedure-to-procedure pair: column 2 is bundled into column 1."""

    __tablename__ = "ptp_edit"
    __table_args__ = (Index("ix_ptp_pair", "column1", "column2"),)

    id: int | None = Field(default=None, primary_key=True)
    setting: str = Field(default="practitioner", max_length=12)
    column1: str = Field(max_length=10)
    column2: str = Field(max_length=10)
    effective: date | None = None
    deletion: date | None = None
    modifier_indicator: str = Field(max_length=1)
    prior_1996: bool = False
    rationale: str | None = Field(default=None, sa_column=Column(Text))
    release_id: int | None = Field(default=None, foreign_key="code_release.id")


class Mue(SQLModel, table=True):
    """A medically unlikely edit: the most units of a code per line or per day."""

    __tablename__ = "mue"
    __table_args__ = (Index("ix_mue_code", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    setting: str = Field(default="practitioner", max_length=12)
    code: str = Field(max_length=10)
    units: int
    adjudication: str | None = Field(default=None, max_length=60)
    rationale: str | None = Field(default=None, sa_column=Column(Text))
    release_id: int | None = Field(default=None, foreign_key="code_release.id")


class FeeRule(SQLModel, table=True):
    """Physician fee schedule indicators per code (and modifier): global days and which of the
    modifiers 50, 51, 62, 66 and 80 the payer allows."""

    __tablename__ = "fee_rule"
    __table_args__ = (Index("ix_fee_rule_code", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=10)
    modifier: str | None = Field(default=None, max_length=2)
    status_code: str | None = Field(default=None, max_length=2)
    global_days: str | None = Field(default=None, max_length=4)
    mult_proc: str | None = Field(default=None, max_length=2)
    bilat_surg: str | None = Field(default=None, max_length=2)
    asst_surg: str | None = Field(default=None, max_length=2)
    co_surg: str | None = Field(default=None, max_length=2)
    team_surg: str | None = Field(default=None, max_length=2)
    release_id: int | None = Field(default=None, foreign_key="code_release.id")


class Descriptor(SQLModel, table=True):
    """A descriptor from a licensed file (AMA CPT, CMS HCPCS), kept apart from our own words."""

    __tablename__ = "code_descriptor"
    __table_args__ = (Index("ix_descriptor_code", "system", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    system: str = Field(max_length=12)
    code: str = Field(max_length=10)
    kind: str = Field(max_length=10)  # long, medium, short
    text: str = Field(sa_column=Column(Text, nullable=False))
    effective: date | None = None
    end_date: date | None = None
    action: str | None = Field(default=None, max_length=2)
    release_id: int | None = Field(default=None, foreign_key="code_release.id")
