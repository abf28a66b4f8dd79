"""Importers for the licensed code files a deployment has: CPT, HCPCS, NCCI PTP, MUE and PFS RVU.

Each `import_*` reads and checks the whole file first (ImportFileError names the file, line and
column of the first bad row, and nothing is written), then writes one Release and its rows in the
caller's transaction. Re-importing a release of the same kind and name replaces it. Which release
is in force: for PTP and MUE the one loaded last for each setting, for the fee schedule the one
loaded last (see `in_force`); descriptors of every release stay, and lookups show the newest.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from ..codetables import Release
from .common import ImportFileError, guess_effective
from .store import Imported, in_force
from .cpt import import_cpt, parse_cpt
from .hcpcs import import_hcpcs, parse_hcpcs
from .mue import import_mue, parse_mue
from .ncci import import_ptp, parse_ptp
from .pfs import import_pfs_rvu, parse_rvu

IMPORTS = {"cpt": import_cpt, "hcpcs": import_hcpcs, "ncci-ptp": import_ptp, "mue": import_mue,
           "pfs-rvu": import_pfs_rvu}
SUPERSEDING = ("ncci-ptp", "mue", "pfs-rvu")  # kinds where a newer release replaces an older one

__all__ = ["IMPORTS", "ImportFileError", "Imported", "guess_effective", "import_cpt", "import_hcpcs",
           "import_mue", "import_pfs_rvu", "import_ptp", "in_force", "list_releases", "parse_cpt",
           "parse_hcpcs", "parse_mue", "parse_ptp", "parse_rvu"]


def list_releases(session: Session) -> list[dict]:
    """Every release, oldest first, as plain values; `in_force` is true or false for the kinds
    where a newer release supersedes an older one, and None for the others."""
    current = {r.id for kind in SUPERSEDING for r in in_force(session, kind)}
    return [dict(id=r.id, kind=r.kind, name=r.name, file_name=r.file_name, effective=r.effective,
                 rows=r.rows, loaded_at=r.loaded_at.isoformat(timespec="seconds"),
                 in_force=(r.id in current) if r.kind in SUPERSEDING else None)
            for r in session.execute(select(Release).order_by(Release.id)).scalars()]
