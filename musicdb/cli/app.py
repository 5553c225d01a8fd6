"""The `musicdb` Typer app and what every command shares: consoles, --db, one-line errors."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape

from musicdb import __version__
from musicdb.choices import LABEL_RULES
from musicdb.errors import MusicdbError, interrupted_statement

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    # Plain help text, as Click writes it: help strings are text, not rich markup (which ate
    # every "[default: all cores]" and left "Worker processes ."), flags show no "<bool>", and
    # nothing is boxed, so a long path or option is not wrapped inside a frame.
    rich_markup_mode=None,
    help="musicdb: a music feature store with a SQL face. Audio features for whole songs and "
    "snippets, in one DuckDB file you can query from the duckdb shell.",
)
out = Console()
err = Console(stderr=True)


def _element_types() -> None:
    """Help shows a repeatable value by its element's type, `PATH... <Path>` and
    `--exclude-label <str>`, not Python's `<list[Path]>` (Typer 0.2x writes the annotation)."""
    from typer.core import _TyperParameter

    shown = _TyperParameter.display_type
    if getattr(shown, "musicdb", False):
        return

    def display_type(self, ctx):  # Typer's own signature
        return re.sub(r"list\[(.*)\]", r"\1", shown(self, ctx))

    display_type.musicdb = True
    _TyperParameter.display_type = display_type


_element_types()


def _print_version(value: bool) -> None:
    if value:
        import duckdb

        out.print(f"musicdb {__version__} (duckdb {duckdb.__version__}, Python "
                  f"{sys.version.split()[0]})", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_print_version,
        help="Print the version (and duckdb's, whose file format the shell must share) and "
             "exit.")] = False) -> None:
    """Options before the command name."""

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
    except typer.Abort as exc:
        # Typer turns Ctrl-C into exit 130 itself; what arrives as Abort is an EOFError, which
        # no musicdb command causes by reading input (none prompts): a bug, such as a worker
        # process that died, shown as one rather than as "Aborted.".
        if isinstance(exc.__cause__, EOFError):
            raise exc.__cause__ from None
        err.print("Aborted.")
        sys.exit(130)
    except RuntimeError as exc:  # Ctrl-C during a DuckDB statement (a long `musicdb sql`)
        if not interrupted_statement(exc):
            raise
        err.print("Aborted.")
        sys.exit(130)
    except TyperException as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        # Typer checks a Literal choice through pydantic, whose message starts "Value error, ".
        message = message.replace(": Value error, ", ": ")
        if type(exc).__name__ == "NoArgsIsHelpError":  # plain `musicdb`: the help, as asked
            out.print(message, markup=False, highlight=False)
            sys.exit(0)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        err.print(f"[red]Error:[/red] {escape(message)}{escape(hint)}", soft_wrap=True,
                  highlight=False)
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)


# Fixed choices are Literal types: Typer refuses any other value as a usage error (exit 2, one
# line listing them) before the command runs, and the help shows them (<centroid|cosine|songs>).
# The same names as musicdb.choices.LABEL_RULES and musicdb.similarity.similar.METHODS (not
# imported here: that would put similarity's imports on every command's start-up path;
# tests/test_conventions.py checks they agree).
DISTANCE_METHODS = ("centroid", "cosine", "songs")

LabelFrom = Annotated[Literal[LABEL_RULES], typer.Option(
    help="Label rule: auto (artist tag, else album artist, else folder, else imported label), "
    "artist, albumartist, genre, folder or imported.")]
FeatureSetChoice = Annotated[str | None, typer.Option(
    "--feature-set", help="Feature set (default: 'default' if present, else the set with most "
    "songs).")]
DistanceMethod = Annotated[Literal[DISTANCE_METHODS], typer.Option(
    "--method", help="Between labels: centroid (Euclidean between standardised means), cosine, "
    "or songs (root-mean-square distance between the two labels' songs: spread-aware).")]
MinSongs = Annotated[int, typer.Option(
    "--min-songs", min=1, help="Leave out labels with fewer songs (small centroids are noise).")]
