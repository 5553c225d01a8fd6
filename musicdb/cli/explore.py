"""`musicdb similar`, `heatmap`: the library's sonic neighbourhoods (`map` is in maps.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from musicdb.cli.app import (
    DEFAULT_DB,
    DbPath,
    DistanceMethod,
    FeatureSetChoice,
    LabelFrom,
    MinSongs,
    app,
    err,
    out,
    user_errors,
)
from musicdb.terminal import one_line


@app.command()
def similar(
    name: Annotated[str, typer.Argument(
        help="An artist (any label), or with --songs a song: id, path, 'Artist - Title', or an "
        "audio file not in the library (analysed now).")],
    songs: Annotated[bool, typer.Option("--songs", help="Nearest songs to a song.")] = False,
    number: Annotated[int, typer.Option("-n", "--number", min=1, help="How many.")] = 10,
    feature_set: FeatureSetChoice = None,
    label_from: LabelFrom = "auto",
    method: DistanceMethod = "centroid",
    min_songs: MinSongs = 1,
    exclude_label: Annotated[list[str] | None, typer.Option(
        help="Leave out this label (repeatable), e.g. --exclude-label Xmas.")] = None,
    where: Annotated[str | None, typer.Option(
        help="SQL condition on the library view's columns, e.g. \"genre <> 'Podcast'\"; "
        "for artists, keeps those with a song matching it. Read-only: one condition, no "
        "files.")] = None,
    no_same_artist: Annotated[bool, typer.Option(
        "--no-same-artist", help="Songs: leave out the query's artist.")] = False,
    no_same_album: Annotated[bool, typer.Option(
        "--no-same-album", help="Songs: leave out the query's album.")] = False,
    explain: Annotated[bool, typer.Option(
        "--explain", help="Show the features that bring each result close and keep it apart.")
    ] = False,
    playlist: Annotated[Path | None, typer.Option(
        dir_okay=False, help="Write the nearest songs as an m3u/m3u8 playlist.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    db: DbPath = DEFAULT_DB,
) -> None:
    """Nearest artists (or with --songs, songs) on standardised features.

    Same answers as the SQL macros similar_artists() / similar_songs() in the duckdb shell.
    """
    from musicdb.similarity import similar as sim
    from musicdb.similarity.functions import use_sql_functions
    from musicdb.store import database as store

    if playlist is not None and not songs:  # before any work: an artist answer has no songs
        raise typer.BadParameter("a playlist lists songs: add --songs", param_hint="--playlist")
    with user_errors(), store.connect(db, read_only=True) as con:
        use_sql_functions(con)
        if songs:
            answer = sim.similar_songs(
                con, name, k=number, feature_set=feature_set, label_from=label_from,
                exclude_labels=tuple(exclude_label or ()), where=where,
                no_same_artist=no_same_artist, no_same_album=no_same_album)
        else:
            answer = sim.similar_artists(
                con, name, k=number, feature_set=feature_set, label_from=label_from,
                method=method, min_songs=min_songs, exclude_labels=tuple(exclude_label or ()),
                where=where)
        reasons = sim.explain(con, answer) if explain else None
    if playlist is not None:
        written = sim.write_playlist(playlist, answer)
        err.print(f"Wrote {written} songs to {escape(str(playlist))}", soft_wrap=True)
    if as_json:
        if reasons is not None:
            for result, why in zip(answer.results, reasons, strict=False):
                result["explain"] = why
        print(answer.as_json())
        return
    _render_similar(answer, reasons)


def _render_similar(answer, reasons: list[dict] | None) -> None:  # answer: similar.Similar
    what = "songs" if answer.kind == "songs" else f"labels ({answer.label_from})"
    out.print(f"Nearest {what} to [bold]{escape(answer.query)}[/bold] · feature set "
              f"{answer.feature_set} · {answer.method}", soft_wrap=True)
    if answer.kind == "songs":
        table = Table("#", "artist", "title", "distance", "path")
        rows = [(r.get("artist") or "", r.get("title") or "", r["distance"], r.get("path") or "")
                for r in answer.results]
    else:
        table = Table("#", "name", "distance", "songs")
        rows = [(r["name"], r["distance"], r["songs"]) for r in answer.results]
    for i, row in enumerate(rows, start=1):
        cells = [str(i)] + [f"{c:.3f}" if isinstance(c, float) else one_line(str(c))
                            for c in row]
        table.add_row(*cells)
    out.print(table)
    if not answer.results:
        out.print("No results (filters removed everything?).")
    for result, why in zip(answer.results, reasons or [], strict=False):
        label = result.get("name") or f"{result.get('artist')} - {result.get('title')}"
        near = ", ".join(f"{w['feature']} {w['query']:.3g} vs {w['result']:.3g}"
                         for w in why["closest"])
        far = ", ".join(f"{w['feature']} {w['query']:.3g} vs {w['result']:.3g}"
                        for w in why["apart"])
        out.print(f"[bold]{escape(str(label))}[/bold]: close on {escape(near)}; "
                  f"apart on {escape(far)}", soft_wrap=True)


@app.command()
def heatmap(
    output: Annotated[Path, typer.Option(
        "-o", "--output", dir_okay=False,
        help="The HTML file to write (self-contained: works offline).")] = Path("artists.html"),
    feature_set: FeatureSetChoice = None,
    label_from: LabelFrom = "auto",
    method: DistanceMethod = "centroid",
    min_songs: MinSongs = 1,
    db: DbPath = DEFAULT_DB,
) -> None:
    """Heatmap of the distances between artists (labels), as an interactive HTML page.

    Rows and columns are ordered by hierarchical clustering, so similar labels sit together;
    hovering a cell shows both names and their distance.
    """
    from musicdb.plots.heatmap import write_heatmap
    from musicdb.similarity.functions import use_sql_functions
    from musicdb.similarity.heatmap import label_matrix
    from musicdb.store import database as store

    with user_errors():
        with store.connect(db, read_only=True) as con:
            use_sql_functions(con)
            matrix = label_matrix(con, feature_set=feature_set, label_from=label_from,
                                  method=method, min_songs=min_songs)
        write_heatmap(output, matrix)
    out.print(f"Wrote a heatmap of {len(matrix.names)} labels to {escape(str(output))}",
              soft_wrap=True, highlight=False)

