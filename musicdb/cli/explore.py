"""`musicdb similar`, `heatmap`: the library's sonic neighbourhoods (`map` is in maps.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

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
from musicdb.cli.output import AsCsv, OutputFormat, output_format, print_rows
from musicdb.cli.staleness import warn_if_stale
from musicdb.errors import SimilarityError

if TYPE_CHECKING:
    from musicdb.similarity.similar import Similar


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
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print one JSON object: the query, the rule, set and method used, and "
        "the results (not with --csv).")] = False,
    as_csv: AsCsv = False,
    db: DbPath = DEFAULT_DB,
) -> None:
    """Nearest artists (or with --songs, songs) on standardised features.

    Same answers as the SQL macros similar_artists() / similar_songs() in the duckdb shell.
    Under the auto rule, a name that is a label only under another rule (a folder, say) is
    answered among that rule's labels. Piped, the results print as tab-separated lines with
    every value in full.
    """
    from musicdb.similarity import similar as sim
    from musicdb.similarity.functions import use_sql_functions
    from musicdb.store import database as store

    fmt = output_format(as_json, as_csv)  # every usage error before any work
    _refuse_options_that_do_not_apply(songs, method=method, min_songs=min_songs,
                                      playlist=playlist, no_same_artist=no_same_artist,
                                      no_same_album=no_same_album)
    with user_errors(), store.connect(db, read_only=True) as con:
        use_sql_functions(con)
        warn_if_stale(con, db, err)
        if songs:
            answer = sim.similar_songs(
                con, name, k=number, feature_set=feature_set, label_from=label_from,
                exclude_labels=tuple(exclude_label or ()), where=where,
                no_same_artist=no_same_artist, no_same_album=no_same_album,
                on_analyse=_say_analysing)
        else:
            try:
                answer = sim.similar_artists(
                    con, name, k=number, feature_set=feature_set, label_from=label_from,
                    method=method, min_songs=min_songs,
                    exclude_labels=tuple(exclude_label or ()), where=where)
            except SimilarityError as exc:
                if not sim.looks_like_a_path(name):
                    raise
                raise SimilarityError(f"{name!r} looks like a file, not a label: add --songs "
                                      "for the songs nearest it") from exc
            if answer.label_from != label_from:
                err.print(f"{escape(repr(answer.query))} is no {label_from} label but a "
                          f"{answer.label_from} label: answering among {answer.label_from} "
                          f"labels (--label-from {answer.label_from})", soft_wrap=True,
                          highlight=False)
        reasons = _explain(con, answer) if explain else None
    if playlist is not None:
        written = sim.write_playlist(playlist, answer)
        err.print(f"Wrote {written} songs to {escape(str(playlist))}", soft_wrap=True)
    if fmt is OutputFormat.JSON:
        if reasons is not None:
            for result, why in zip(answer.results, reasons, strict=False):
                result["explain"] = why
        print(answer.as_json())
        return
    _print_similar(answer, reasons, fmt)


def _refuse_options_that_do_not_apply(songs: bool, *, method: str, min_songs: int,
                                      playlist: Path | None, no_same_artist: bool,
                                      no_same_album: bool) -> None:
    """Options of the other kind of answer are usage errors (exit 2), not silently ignored."""
    if songs:
        if method != "centroid":
            raise typer.BadParameter(
                "only for artists (songs are ranked by the euclidean distance of their "
                "standardised features): drop it or --songs", param_hint="--method")
        if min_songs != 1:
            raise typer.BadParameter("only for artists: drop it or --songs",
                                     param_hint="--min-songs")
        return
    if playlist is not None:  # an artist answer has no songs to list
        raise typer.BadParameter("a playlist lists songs: add --songs", param_hint="--playlist")
    for given, option in ((no_same_artist, "--no-same-artist"),
                          (no_same_album, "--no-same-album")):
        if given:
            raise typer.BadParameter("filters songs: add --songs", param_hint=option)


def _say_analysing(path: Path) -> None:
    """Analysing a file takes 20-40 s: say so on stderr before it starts."""
    err.print(f"Analysing {escape(str(path))} (not in the library) …", soft_wrap=True,
              highlight=False)


def _explain(con, answer: Similar) -> list[dict]:
    from musicdb.similarity.explain import explain

    return explain(con, answer)


def _print_similar(answer: Similar, reasons: list[dict] | None, fmt: OutputFormat) -> None:
    """The results as a table on a terminal, full tab-separated values on a pipe, or CSV."""
    if answer.kind == "songs":
        columns = ["rank", "artist", "title", "distance", "path", "song_id"]
        rows = [(i, r.get("artist"), r.get("title"), r["distance"], r.get("path"),
                 r["song_id"]) for i, r in enumerate(answer.results, start=1)]
    else:
        columns = ["rank", "name", "distance", "songs"]
        rows = [(i, r["name"], r["distance"], r["songs"])
                for i, r in enumerate(answer.results, start=1)]
    on_terminal = fmt is OutputFormat.TABLE and out.is_terminal
    if reasons is not None and not on_terminal:  # one row per result, whatever reads it
        columns += ["closest", "apart"]
        rows = [(*row, _features(why["closest"]), _features(why["apart"]))
                for row, why in zip(rows, reasons, strict=True)]
    if on_terminal:  # what was answered, above the table (a pipe gets the rows alone)
        what = "songs" if answer.kind == "songs" else f"labels ({answer.label_from})"
        out.print(f"Nearest {what} to [bold]{escape(answer.query)}[/bold] · feature set "
                  f"{escape(answer.feature_set)} · {answer.method}", soft_wrap=True)
    print_rows(columns, rows, fmt, terminal={"distance": "{:.3f}".format, "rank": str})
    if not on_terminal:
        return
    if not answer.results:
        out.print("No results (filters removed everything?).")
    for result, why in zip(answer.results, reasons or [], strict=False):
        label = result.get("name") or f"{result.get('artist')} - {result.get('title')}"
        out.print(f"[bold]{escape(str(label))}[/bold]: close on "
                  f"{escape(_features(why['closest']))}; apart on "
                  f"{escape(_features(why['apart']))}", soft_wrap=True)


def _features(reasons: list[dict]) -> str:
    """'zcr_a 0.123 vs 0.131, bpm 120 vs 118': each feature's value for the query and result."""
    return ", ".join(f"{w['feature']} {w['query']:.3g} vs {w['result']:.3g}" for w in reasons)


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
            warn_if_stale(con, db, err)
            matrix = label_matrix(con, feature_set=feature_set, label_from=label_from,
                                  method=method, min_songs=min_songs)
        write_heatmap(output, matrix)
    out.print(f"Wrote a heatmap of {len(matrix.names)} labels to {escape(str(output))}",
              soft_wrap=True, highlight=False)
