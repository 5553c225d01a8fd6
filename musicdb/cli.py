"""The `musicdb` command: parse, call the library, render. No SQL, no numpy here."""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from musicdb.errors import MusicdbError
from musicdb.terminal import one_line

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


def _beside_python(command: str) -> str:
    """A command's name if it is on PATH, else its path in this Python's bin folder."""
    if shutil.which(command):
        return command
    beside = Path(sys.executable).with_name(command)
    return str(beside) if beside.exists() else command


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(exists=True, metavar="PATH...",
                                                help="Audio files or folders.")],
    db: DbPath = DEFAULT_DB,
    snippet_seconds: Annotated[float, typer.Option(
        min=0, help="Length of the snippets ('mini songs'); 0 = whole songs only.")] = 30.0,
    workers: Annotated[int | None, typer.Option(
        min=1, help="Worker processes [default: all cores].")] = None,
    feature_set: Annotated[str, typer.Option(
        help="Comma-separated feature sets to extract, in one pass: 'default' (131 columns: "
        "seed55 plus MFCC, chroma, contrast per band, roll-off, flatness, loudness and dynamic "
        "range, onset rate, tempo confidence) and 'seed55' (the study's 55). Sets already "
        "extracted with the same parameters are skipped.")] = "default,seed55",
    n_fft: Annotated[int, typer.Option(
        min=64, help="STFT size; any change makes a new feature-set version.")] = 2048,
    hop_length: Annotated[int, typer.Option(
        min=1, help="STFT hop in samples at 22,050 Hz (441 = 20 ms); a new version too.")] = 441,
    retry_errors: Annotated[bool, typer.Option(
        help="Try again files that failed before and have not changed.")] = False,
    scheduler: Annotated[str | None, typer.Option(
        help="Analyse on a Dask cluster (e.g. tcp://host:8786) instead of local workers; "
        "every worker must see the files at the same paths and have musicdb installed.")
    ] = None,
    file_timeout: Annotated[float, typer.Option(
        min=1, help="Seconds any one file may take, plus 0.1 s per second of audio it "
        "declares (a 3-hour file: 120 + 1,080 s); a worker past that is stopped and the file "
        "becomes an error row.")] = 120.0,
) -> None:
    """Scan folders for audio, extract features of songs and snippets, store them.

    Incremental: unchanged files are skipped (their tags are still re-read), changed files are
    re-extracted, moved files keep their features, vanished files are marked missing. A bad
    file becomes a row with status 'error' and the run goes on. Ctrl-C or SIGTERM stops after
    writing what is finished; the same command resumes.
    """
    with _StopSignals() as stop:  # from the start: a SIGTERM at any moment gives its code
        from musicdb.pool import analysis_context

        if scheduler is None:
            analysis_context()  # workers' warm-up (~1.6 s) overlaps the imports and the scan

        from musicdb import store
        from musicdb.features import FrameParams
        from musicdb.ingest import ingest as run_ingest
        from musicdb.ui import IngestProgress, render_summary

        sets = tuple(s.strip() for s in feature_set.split(",") if s.strip())
        params = FrameParams(n_fft=n_fft, hop_length=hop_length)
        try:
            with user_errors(), contextlib.ExitStack() as stack, stop.raising():
                cluster = None
                if scheduler is not None:
                    from musicdb.cluster import Cluster

                    cluster = stack.enter_context(Cluster(scheduler))
                con = stack.enter_context(store.connect(db, create=True))
                progress = stack.enter_context(IngestProgress(err))
                summary = run_ingest(con, paths, sets=sets, snippet_seconds=snippet_seconds,
                                     workers=workers, retry_errors=retry_errors, progress=progress,
                                     params=params, cluster=cluster, file_timeout=file_timeout)
        except KeyboardInterrupt:  # before any file was analysed: scanning, hashing, opening
            err.print("[yellow]Interrupted[/yellow] before any file was analysed; run the same "
                      "command again to resume.")
            raise typer.Exit(code=stop.exit_code) from None
        render_summary(err, summary, db)
        if summary.interrupted or stop.signum:
            raise typer.Exit(code=stop.exit_code)
        if summary.nothing_ingested:
            raise typer.Exit(code=1)


class _StopSignals:
    """SIGTERM (`kill`, a service manager) and SIGHUP (a closed terminal) stop like Ctrl-C.

    While `raising()`, a signal raises KeyboardInterrupt: the ingest loop writes the finished
    files and stops. Outside it (the summary, the exit) it is only recorded. Either way the
    exit code says which signal it was: 128 + its number (SIGTERM: 143, Ctrl-C: 130).
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._raise = False
        self._previous: dict = {}

    def __enter__(self) -> _StopSignals:
        self._previous = {sig: signal.signal(sig, self._handle)
                          for sig in (signal.SIGTERM, signal.SIGHUP)}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        self.signum = signum
        if self._raise:
            raise KeyboardInterrupt

    @contextmanager
    def raising(self) -> Iterator[None]:
        self._raise = True
        try:
            yield
        finally:
            self._raise = False

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                         help="A .csv, .csv.gz or .parquet table.")],
    feature_set: Annotated[str, typer.Option(help="Name of the imported feature set.")],
    label_column: Annotated[str, typer.Option(help="Column holding each song's label.")] = "label",
    title_column: Annotated[str, typer.Option(help="Column holding each song's title.")] = "file",
    db: DbPath = DEFAULT_DB,
) -> None:
    """Import precomputed features (e.g. the study's CSV) as songs without audio.

    Songs are identified by (label, title): importing a second table attaches a second feature
    set to the same songs; re-importing a file changes nothing. All or nothing.
    """
    from musicdb import store
    from musicdb.importer import import_table

    with user_errors(), store.connect(db, create=True) as con:
        s = import_table(con, file, set_name=feature_set, label_column=label_column,
                         title_column=title_column)
    verb = "created" if s.created_set else "updated"
    err.print(f"[green]Imported[/green] {s.rows:,} songs into feature set [bold]{s.feature_set}"
              f"[/bold] ({verb}, {s.n_features} features): {s.new_songs:,} new songs, "
              f"{s.changed:,} with changed values.")
    if s.ignored_columns:
        err.print(f"Ignored non-numeric columns: {escape(', '.join(s.ignored_columns))}")
    err.print(f"Try: duckdb -readonly {escape(str(db))} -c 'SELECT label, count(*) FROM "
              f"features_{s.feature_set} GROUP BY label'", soft_wrap=True)


@app.command()
def export(
    out_dir: Annotated[Path, typer.Argument(file_okay=False, help="Folder to write into.")],
    format: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    db: DbPath = DEFAULT_DB,
) -> None:
    """Write songs, labels and every feature set (one column per feature) for other tools."""
    from musicdb import store
    from musicdb.export import export as run_export

    if format not in ("parquet", "csv"):
        raise typer.BadParameter("use parquet or csv", param_hint="--format")
    with user_errors(), store.connect(db, read_only=True) as con:
        written = run_export(con, out_dir, format)
    for path, rows in written:
        out.print(f"{escape(str(path))}\t{rows:,} rows", soft_wrap=True, highlight=False)


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
    from musicdb import similar as sim
    from musicdb import store

    with user_errors(), store.connect(db, read_only=True) as con:
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
        if not songs:
            err.print("[yellow]--playlist lists songs: use it with --songs[/yellow]")
        else:
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
def info(db: DbPath = DEFAULT_DB) -> None:
    """What the database holds: songs, snippets, hours, feature sets, top labels."""
    from musicdb import store
    from musicdb.info import library_info

    with user_errors(), store.connect(db, read_only=True) as con:
        i = library_info(con)
    out.print(f"[bold]{escape(str(db))}[/bold]  schema version {i.schema_version}",
              soft_wrap=True)
    out.print(f"songs: {i.songs['ok']:,} ok, {i.songs['error']:,} error, "
              f"{i.songs['missing']:,} missing; {i.imported:,} imported without audio")
    out.print(f"snippets: {i.snippets:,}   audio: {i.audio_hours:.2f} h")
    sets = Table("feature set", "version", "kind", "features", "songs", "snippets")
    for name, version, kind, n, songs, snippets in i.feature_sets:
        sets.add_row(escape(name), str(version), kind, str(n), f"{songs:,}", f"{snippets:,}")
    out.print(sets)
    labels = Table("label (auto)", "songs")
    for label, n in i.top_labels:
        labels.add_row(escape(str(label)), f"{n:,}")
    out.print(labels)
    if i.similarity_stale:
        err.print("[yellow]The similarity tables are out of date[/yellow] (a run stopped before "
                  "rebuilding them): the next write command (ingest, import) rebuilds them.")
    for path, error in i.recent_errors:
        out.print(f"[red]error[/red] {one_line(path)}: {one_line(error or '')}",
                  soft_wrap=True, highlight=False)


@app.command()
def demo(
    folder: Annotated[Path, typer.Option(help="Where to write the demo library.")] = Path(
        "musicdb-demo"),
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes.")] = None,
) -> None:
    """Generate a small labelled library of synthetic songs, ingest it, show what to try next."""
    from musicdb import store
    from musicdb.ingest import ingest as run_ingest
    from musicdb.synth import demo_library
    from musicdb.ui import IngestProgress, render_summary

    library, db = folder / "library", folder / "demo.duckdb"
    err.print(f"Writing synthetic songs to {library}/ ...")
    demo_library(library)
    with (user_errors(), store.connect(db, create=True) as con,
          IngestProgress(err) as progress):
        summary = run_ingest(con, [library], workers=workers, progress=progress)
    render_summary(err, summary, db)
    shell, me = _beside_python("duckdb"), _beside_python("musicdb")
    out.print(f"""
[bold]Try next:[/bold]
  {me} info --db {db}
  {shell} {db} -c "SELECT label, count(*) AS songs, round(avg(bpm)) AS bpm, round(avg(centroid_a)) AS centroid_hz FROM features_seed55 GROUP BY label ORDER BY label"
  {shell} {db} -c "SELECT label, title, snippet, start_s, end_s, round(zcr_a, 3) AS zcr FROM snippets_seed55 ORDER BY label, title, snippet"
  {me} similar "Click Machine" --db {db}
  {me} similar "Click Machine - Song 1" --songs --explain --db {db}
  {me} heatmap -o artists.html --db {db}
  {me} ingest ~/Music           # your own music, into ./music.duckdb
""", soft_wrap=True, highlight=False)  # noqa: E501


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
    from musicdb import store
    from musicdb.heatmap import write_heatmap

    with user_errors(), store.connect(db, read_only=True) as con:
        n = write_heatmap(con, output, feature_set=feature_set, label_from=label_from,
                          method=method, min_songs=min_songs)
    out.print(f"Wrote a heatmap of {n} labels to {escape(str(output))}", soft_wrap=True,
              highlight=False)


@app.command("map")
def map_(
    method: Annotated[str, typer.Option(
        help="svd (fast, linear), tsne (openTSNE; scikit-learn's Barnes-Hut without it) or "
        "umap (needs the optional umap-learn).")] = "tsne",
    labels: Annotated[str | None, typer.Option(
        help="Comma-separated labels to draw, e.g. TheFlashbulb,Zero7 [default: all].")] = None,
    top: Annotated[int | None, typer.Option(min=1, help="Keep the N largest labels.")] = None,
    label_from: LabelFrom = "auto",
    feature_set: Annotated[str | None, typer.Option(
        help="Feature set (default: 'default' if present, else the set with most songs).")
    ] = None,
    unit: Annotated[str, typer.Option(help="song (whole songs) or snippet.")] = "song",
    perplexity: Annotated[float, typer.Option(
        min=1, help="t-SNE perplexity (lowered to (n-1)/3 on small maps).")] = 30.0,
    learning_rate: Annotated[float | None, typer.Option(
        min=1, help="t-SNE learning rate [default: auto, n/48].")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same map.")] = 0,
    color_by: Annotated[str, typer.Option(
        help="label, or album (e.g. one artist's albums with --labels NAME).")] = "label",
    from_run: Annotated[int | None, typer.Option(
        help="Redraw a stored run (see the map_runs table) without projecting again.")] = None,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", dir_okay=False,
        help="The HTML file [default: named after the options, e.g. "
        "map-study55-tsne-song-p30-seed0.html].")] = None,
    open_page: Annotated[bool, typer.Option("--open", help="Open the page in a browser.")
    ] = False,
    db: DbPath = DEFAULT_DB,
) -> None:
    """Map songs (or snippets) in 2-D: an interactive, self-contained HTML page.

    Features are standardised first. One legend entry per label (click toggles it, double
    click isolates it), a stable colour per label; clicking a point plays the song from its
    file and lists its 5 nearest songs. Every run is stored (map_runs, map_points).
    """
    import time
    import webbrowser

    from musicdb import store
    from musicdb.mapplot import write_page
    from musicdb.maps import default_output, load_run, make_map

    names = [s.strip() for s in labels.split(",") if s.strip()] if labels else None
    started = time.perf_counter()
    with user_errors(), store.connect(db, read_only=from_run is not None) as con:
        if from_run is not None:
            run = load_run(con, from_run)
        else:
            with err.status("Projecting ...") as status:
                run = make_map(con, method=method, feature_set=feature_set,
                               label_from=label_from, labels=names, top=top, unit=unit,
                               perplexity=perplexity, learning_rate=learning_rate, seed=seed,
                               color_by=color_by,
                               on_project=lambda what: status.update(f"Projecting: {what} ..."))
            err.print(f"Projected {len(run.xy):,} {unit}s ({run.method}) in {run.seconds:.1f} s",
                      highlight=False)
            if "perplexity_asked" in run.params:
                err.print(f"[yellow]Perplexity lowered to {run.params['perplexity']} for "
                          f"{len(run.xy)} points[/yellow]")
        page = output or default_output(method=run.method, feature_set=run.feature_set,
                                        unit=run.unit, labels=run.labels if names else None,
                                        top=top,
                                        color_by=run.color_by, perplexity=perplexity,
                                        seed=seed, from_run=from_run)
        write_page(run, page)
    out.print(f"Wrote map run {run.run_id} ({len(run.xy):,} points, {len(set(run.groups))} "
              f"{'albums' if run.color_by == 'album' else 'labels'}) to {escape(str(page))} "
              f"in {time.perf_counter() - started:.1f} s", soft_wrap=True, highlight=False)
    if open_page:
        webbrowser.open(page.resolve().as_uri())


# The supervised commands live in their own module; importing it registers them on `app`.
from musicdb import cli_experiments  # noqa: E402, F401
