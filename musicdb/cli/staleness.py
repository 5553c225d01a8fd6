"""One line when a command answers from similarity tables that lag the data."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console


def warn_if_stale(con, db: Path, err: Console) -> None:
    """Say so on stderr when the similarity tables lag the songs and features.

    During an ingest they always do: it rebuilds them once, at its end (8 s at 100,000
    songs), and readers meanwhile get the tables of the run before. `con` is a DuckDB
    connection to `db`.
    """
    from musicdb.store.access import ingest_holder
    from musicdb.store.database import similarity_stale

    pid = ingest_holder(db)
    if pid is not None:
        who = f"musicdb ingest (PID {pid})" if pid > 0 else "a musicdb ingest"
        err.print(f"[yellow]Note:[/yellow] {who} is updating {db}: similarity answers come "
                  "from the tables of the run before it (songs it adds count once it ends).",
                  soft_wrap=True, highlight=False)
    elif similarity_stale(con):
        err.print("[yellow]The similarity tables are out of date[/yellow] (a run stopped before "
                  "rebuilding them): the next write command (ingest, import) rebuilds them.",
                  soft_wrap=True, highlight=False)
