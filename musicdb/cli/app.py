"""The `musicdb` Typer app and what every command shares: consoles, --db, one-line errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from musicdb.errors import MusicdbError

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="musicdb: a music feature store with a SQL face. Audio features for whole songs and "
    "snippets, in one DuckDB file you can query from the duckdb shell.",
)
out = Console()
err = Console(stderr=True)

DbPath = Annotated[
    Path,
    typer.Option("--db", envvar="MUSICDB_DB", dir_okay=False,
                 help="The database file (env MUSICDB_DB)."),
]
DEFAULT_DB = Path("music.duckdb")


@contextmanager
def user_errors() -> Iterator[None]:
    """Expected failures print one red line and exit 1; bugs still show a traceback."""
    try:
        yield
    except MusicdbError as exc:
        # The message is text, not markup ('[v2]' in a file name); one line, never wrapped.
        err.print(f"[red]Error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(code=1) from exc


def main() -> None:
    """The `musicdb` command. A usage error (a path that does not exist, an unknown option) is
    one line and exit code 2, not the boxed usage screen."""
    from typer.exceptions import TyperException  # Typer's base of Click's errors

    try:
        code = app(prog_name="musicdb", standalone_mode=False)
    except typer.Abort:  # Ctrl-C outside a command's own handling
        err.print("Aborted.")
        sys.exit(130)
    except TyperException as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if type(exc).__name__ == "NoArgsIsHelpError":  # plain `musicdb`: the help, as asked
            out.print(message, markup=False, highlight=False)
            sys.exit(0)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        err.print(f"[red]Error:[/red] {escape(message)}{escape(hint)}", soft_wrap=True,
                  highlight=False)
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)


LabelFrom = Annotated[str, typer.Option(
    help="Label rule: auto (artist tag, else album artist, else folder, else imported label), "
    "artist, albumartist, genre, folder or imported.")]
FeatureSetChoice = Annotated[str | None, typer.Option(
    "--feature-set", help="Feature set (default: 'default' if present, else the set with most "
    "songs).")]
DistanceMethod = Annotated[str, typer.Option(
    "--method", help="Between labels: centroid (Euclidean between standardised means), cosine, "
    "or songs (root-mean-square distance between the two labels' songs: spread-aware).")]
MinSongs = Annotated[int, typer.Option(
    "--min-songs", min=1, help="Leave out labels with fewer songs (small centroids are noise).")]
