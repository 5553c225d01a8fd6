"""`musicdb import`, `export`, `info`: tables in and out, what the database holds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.markup import escape

from musicdb.cli.app import DEFAULT_DB, DbPath, app, err, out, user_errors
from musicdb.cli.output import OutputFormat, count, output_format, print_json, print_rows
from musicdb.cli.staleness import warn_if_stale
from musicdb.terminal import one_line

if TYPE_CHECKING:
    from musicdb.store.info import LibraryInfo


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                         help="A .csv, .csv.gz or .parquet table.")],
    feature_set: Annotated[str, typer.Option(help="Name of the imported feature set.")],
    label_column: Annotated[str, typer.Option(help="Column holding each song's label.")] = "label",
    title_column: Annotated[str, typer.Option(help="Column holding each song's title.")] = "file",
    db: DbPath = DEFAULT_DB,
) -> None:
    """Import precomputed features (the study's CSV, say) as songs without audio.

    Songs are identified by (label, title): importing a second table attaches a second feature
    set to the same songs; re-importing a file changes nothing. All or nothing.
    """
    from musicdb.store import database as store
    from musicdb.store.importer import import_table, refuse_extracted_name

    with user_errors():
        refuse_extracted_name(feature_set)  # before a new database file is made for nothing
    with user_errors(), store.connect(db, create=True) as con:
        s = import_table(con, file, set_name=feature_set, label_column=label_column,
                         title_column=title_column)
    from musicdb.terminal import plural

    verb = "created" if s.created_set else "updated"
    err.print(f"[green]Imported[/green] {plural(s.rows, 'song')} into feature set "
              f"[bold]{s.feature_set}[/bold] ({verb}, {plural(s.n_features, 'feature')}): "
              f"{plural(s.new_songs, 'new song')}, {s.changed:,} with changed values.")
    if s.ignored_columns:
        err.print(f"Ignored non-numeric columns: {escape(', '.join(s.ignored_columns))}")
    err.print(f"Try: duckdb -readonly {escape(str(db))} -c 'SELECT label, count(*) FROM "
              f"features_{s.feature_set} GROUP BY label'", soft_wrap=True)


@app.command()
def export(
    out_dir: Annotated[Path, typer.Argument(file_okay=False, help="Folder to write into.")],
    format: Annotated[Literal["parquet", "csv"], typer.Option(
        "--format", help="parquet or csv.")] = "parquet",
    db: DbPath = DEFAULT_DB,
) -> None:
    """Write songs, labels and every feature set (one column per feature) for other tools."""
    from musicdb.store import database as store
    from musicdb.store.export import export as run_export

    with user_errors(), store.connect(db, read_only=True) as con:
        written = run_export(con, out_dir, format)
    for path, rows in written:
        out.print(f"{escape(str(path))}\t{rows:,} rows", soft_wrap=True, highlight=False)


InfoJson = Annotated[bool, typer.Option(
    "--json", help="Print one JSON object: every number below (not with --csv).")]
InfoCsv = Annotated[bool, typer.Option(
    "--csv", help="Print the feature-set table as CSV (not with --json).")]


@app.command()
def info(db: DbPath = DEFAULT_DB, as_json: InfoJson = False, as_csv: InfoCsv = False) -> None:
    """What the database holds: songs, snippets, hours, feature sets, top labels.

    Snippets are counted once however many feature sets describe them; the table gives each
    set's own count.
    """
    from musicdb.store import database as store
    from musicdb.store.info import SET_COLUMNS, library_info

    fmt = output_format(as_json, as_csv)
    with user_errors(), store.connect(db, read_only=True) as con:
        i = library_info(con)
        warn_if_stale(con, db, err)  # why the similarity tables lag the data, and until when
    if fmt is OutputFormat.JSON:
        print_json({"database": str(db)} | i.as_json())
    elif fmt is OutputFormat.CSV:
        print_rows(SET_COLUMNS, i.feature_sets, fmt)
    else:
        print_info(db, i, fmt)


def print_info(db: Path, i: LibraryInfo, fmt: OutputFormat) -> None:
    """`info` for people: a few lines, the feature sets and the top labels as tables."""
    out.print(f"[bold]{escape(str(db))}[/bold]  schema version {i.schema_version}",
              soft_wrap=True)
    out.print(f"songs: {i.songs['ok']:,} ok, {i.songs['error']:,} error, "
              f"{i.songs['missing']:,} missing; {i.imported:,} imported without audio",
              soft_wrap=True)
    out.print(f"snippets: {i.snippets:,} (each once, over all feature sets)   "
              f"audio: {i.audio_hours:.2f} h", soft_wrap=True)
    print_rows(["feature set", "version", "kind", "features", "songs", "snippets"],
               i.feature_sets, fmt, terminal={"songs": count, "snippets": count})
    print_rows(["label (auto)", "songs"], i.top_labels, fmt, terminal={"songs": count})
    for path, error in i.recent_errors:
        out.print(f"[red]error[/red] {one_line(path)}: {one_line(error or '')}",
                  soft_wrap=True, highlight=False)
