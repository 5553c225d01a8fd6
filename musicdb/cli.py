"""The `musicdb` command: parse, call the library, render. No SQL, no numpy here."""

from __future__ import annotations

import shutil
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


def _beside_python(command: str) -> str:
    """A command's name if it is on PATH, else its path in this Python's bin folder."""
    if shutil.which(command):
        return command
    beside = Path(sys.executable).with_name(command)
    return str(beside) if beside.exists() else command


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(exists=True, help="Audio files or folders.")],
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
) -> None:
    """Scan folders for audio, extract features of songs and snippets, store them.

    Incremental: unchanged files are skipped (their tags are still re-read), changed files are
    re-extracted, moved files keep their features, vanished files are marked missing. A bad
    file becomes a row with status 'error' and the run goes on.
    """
    from musicdb import store
    from musicdb.features import FrameParams
    from musicdb.ingest import ingest as run_ingest
    from musicdb.ui import IngestProgress, render_summary

    sets = tuple(s.strip() for s in feature_set.split(",") if s.strip())
    params = FrameParams(n_fft=n_fft, hop_length=hop_length)
    with user_errors(), store.connect(db) as con, IngestProgress(err) as progress:
        summary = run_ingest(con, paths, sets=sets, snippet_seconds=snippet_seconds,
                             workers=workers, retry_errors=retry_errors, progress=progress,
                             params=params)
    render_summary(err, summary, db)
    if summary.interrupted:
        raise typer.Exit(code=130)
    if summary.nothing_ingested:
        raise typer.Exit(code=1)


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

    with user_errors(), store.connect(db) as con:
        s = import_table(con, file, set_name=feature_set, label_column=label_column,
                         title_column=title_column)
    verb = "created" if s.created_set else "updated"
    err.print(f"[green]Imported[/green] {s.rows:,} songs into feature set [bold]{s.feature_set}"
              f"[/bold] ({verb}, {s.n_features} features): {s.new_songs:,} new songs, "
              f"{s.changed:,} with changed values.")
    if s.ignored_columns:
        err.print(f"Ignored non-numeric columns: {', '.join(s.ignored_columns)}")
    err.print(f"Try: duckdb {db} -c 'SELECT label, count(*) FROM features_{s.feature_set} "
              "GROUP BY label'")


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
        out.print(f"{path}\t{rows:,} rows")


@app.command()
def info(db: DbPath = DEFAULT_DB) -> None:
    """What the database holds: songs, snippets, hours, feature sets, top labels."""
    from musicdb import store
    from musicdb.info import library_info

    with user_errors(), store.connect(db, read_only=True) as con:
        i = library_info(con)
    out.print(f"[bold]{db}[/bold]  schema version {i.schema_version}")
    out.print(f"songs: {i.songs['ok']:,} ok, {i.songs['error']:,} error, "
              f"{i.songs['missing']:,} missing; {i.imported:,} imported without audio")
    out.print(f"snippets: {i.snippets:,}   audio: {i.audio_hours:.2f} h")
    sets = Table("feature set", "version", "kind", "features", "songs", "snippets")
    for name, version, kind, n, songs, snippets in i.feature_sets:
        sets.add_row(name, str(version), kind, str(n), f"{songs:,}", f"{snippets:,}")
    out.print(sets)
    labels = Table("label (auto)", "songs")
    for label, n in i.top_labels:
        labels.add_row(label, f"{n:,}")
    out.print(labels)
    for path, error in i.recent_errors:
        out.print(f"[red]error[/red] {path}: {error}")


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
    with user_errors(), store.connect(db) as con, IngestProgress(err) as progress:
        summary = run_ingest(con, [library], workers=workers, progress=progress)
    render_summary(err, summary, db)
    shell, me = _beside_python("duckdb"), _beside_python("musicdb")
    out.print(f"""
[bold]Try next:[/bold]
  {me} info --db {db}
  {shell} {db} -c "SELECT label, count(*) AS songs, round(avg(bpm)) AS bpm, round(avg(centroid_a)) AS centroid_hz FROM features_seed55 GROUP BY label ORDER BY label"
  {shell} {db} -c "SELECT label, title, snippet, start_s, end_s, round(zcr_a, 3) AS zcr FROM snippets_seed55 ORDER BY label, title, snippet"
  {me} ingest ~/Music           # your own music, into ./music.duckdb
""", soft_wrap=True, highlight=False)  # noqa: E501
