"""The review desk and the operator's view: server-rendered pages that call the same functions as the CLI."""
from .app import create_app

__all__ = ["create_app"]
