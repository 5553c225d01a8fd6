"""`musicdb path A B`: a smooth sequence of songs from A to B (the song_path SQL macro)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from musicdb.cli.app import DEFAULT_DB, DbPath, FeatureSetChoice, app, err, out, user_errors
from musicdb.cli.output import AsCsv, AsJson, OutputFormat, output_format, print_rows
from musicdb.cli.staleness import warn_if_stale


@app.command()
def path(
    a: Annotated[str, typer.Argument(
        metavar="A", help="The first song: its id, its path, or 'Artist - Title' (ignoring case "
        "and accents).")],
    b: Annotated[str, typer.Argument(
        metavar="B", help="The last song, given the same ways.")],
    number: Annotated[int, typer.Option(
        "-n", "--number", min=2, help="How many songs, A and B included.")] = 12,
    feature_set: FeatureSetChoice = None,
    playlist: Annotated[Path | None, typer.Option(
        dir_okay=False, help="Also write the path as an m3u/m3u8 playlist (UTF-8, absolute "
        "paths).")] = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    db: DbPath = DEFAULT_DB,
) -> None:
    """A path of songs from A to B that moves smoothly through the sound.

    The inner songs are the songs nearest evenly spaced points on the straight line from A to
    B in standardised feature space (the space `musicdb similar --songs` ranks in), in order:
    no song twice, no copy of a song (the same file at another path), and one song per
    artist unless the library has too few artists. A library with fewer songs than -n gives a
    shorter path, and says so. Same answer as the SQL macro song_path(a, b, n) in the duckdb
    shell. to_target is a song's distance from its point on the line, step its distance from
    the song before it.
    """
    from musicdb.similarity.functions import use_sql_functions
    from musicdb.similarity.paths import COLUMNS, path_between
    from musicdb.similarity.similar import Similar, write_playlist
    from musicdb.store import database as store

    fmt = output_format(as_json, as_csv)  # every usage error before any work
    with user_errors(), store.connect(db, read_only=True) as con:
        use_sql_functions(con)
        warn_if_stale(con, db, err)
        answer = path_between(con, a, b, n=number, feature_set=feature_set)
    songs = answer.songs
    if len(songs) < number:
        err.print(f"[yellow]Note:[/yellow] the library holds only {len(songs)} songs a path "
                  f"can use (a song and its copies count once): the path has {len(songs)}, "
                  f"not {number}", soft_wrap=True, highlight=False)
    if playlist is not None:
        listed = Similar(f"{answer.first} -> {answer.last}", "auto", answer.feature_set,
                         "euclidean", "songs", songs)
        written = write_playlist(playlist, listed)
        missing = f" ({len(songs) - written} have no file)" if written < len(songs) else ""
        err.print(f"Wrote {written} songs to {escape(str(playlist))}{missing}", soft_wrap=True,
                  highlight=False)
    if fmt is OutputFormat.TABLE and out.is_terminal:  # what was answered, above the table
        out.print(f"Path from [bold]{escape(answer.first)}[/bold] to "
                  f"[bold]{escape(answer.last)}[/bold] · feature set "
                  f"{escape(answer.feature_set)} · {len(songs)} songs", soft_wrap=True,
                  highlight=False)
    rows = [tuple(song[c] for c in COLUMNS) for song in songs]  # the macro's columns
    print_rows(COLUMNS, rows, fmt, terminal={"position": str, "to_target": "{:.3f}".format,
                                           "step": lambda v: "" if v is None else f"{v:.3f}"})

