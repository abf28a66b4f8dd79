"""Set-up commands: `init` and `config check`."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer
from sqlmodel import Session

from .. import config as config_module
from . import STATE, app, config_app, console

if TYPE_CHECKING:
    from rich.progress import Progress


def progress_bar() -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False)


def load_bundled(engine, icd: bool = True) -> None:
    """Load the starter set and ICD-10-CM, each with a progress bar, each in one transaction."""
    from ..codeload import load_icd10cm, load_starter

    with progress_bar() as bar:
        task = bar.add_task("starter CPT/HCPCS set", total=None)
        with Session(engine) as session:
            rows = load_starter(session, progress=lambda done, total: bar.update(task, completed=done, total=total)).rows
            session.commit()
        bar.update(task, description=f"starter CPT/HCPCS set: {rows} codes")
        if icd:
            task = bar.add_task("ICD-10-CM", total=None)
            with Session(engine) as session:
                rows = load_icd10cm(session, progress=lambda done, total: bar.update(task, completed=done, total=total)).rows
                session.commit()
            bar.update(task, description=f"ICD-10-CM: {rows} codes")


@app.command()
def init(icd: bool = typer.Option(True, "--icd/--no-icd", help="Load ICD-10-CM (takes a few seconds).")):
    """Create or migrate the schema and load the bundled codes into the configured database."""
    from ..db import upgrade

    engine = STATE.engine
    upgrade(engine)
    console.print(f"schema ready in {STATE.settings.database.url}")
    load_bundled(engine, icd=icd)


@config_app.command("check")
def config_check(as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Print the effective settings with secrets masked; exit 2 naming the key if one is bad."""
    settings = STATE.settings
    data = config_module.masked(settings)
    if as_json:
        console.print_json(json.dumps(data, default=str))
        return
    for section, values in data.items():
        console.print(f"[{section}]")
        for key, value in values.items():
            console.print(f"  {key} = {value!r}", markup=False)
    console.print(f"config ok ({STATE.config_path or 'built-in defaults'})")
