"""The `musicdb` command: a thin Typer layer over the library, one module per command group.

Importing this package registers every command on `app`; the command modules import only
musicdb.cli.app (shared options and consoles), never each other.
"""

from musicdb.cli import (  # noqa: F401 - registers them
    experiments,
    explore,
    ingest,
    library,
    maps,
    paths,
    serve,
)
from musicdb.cli.app import app, main

__all__ = ["app", "main"]
