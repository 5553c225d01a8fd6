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
    file: Annotated[Path, typer.Argument(exists=True, help=(
        "A .csv, .csv.gz or .parquet table, or a folder `export --format parquet` wrote."))],
    feature_set: Annotated[str | None, typer.Option(
        help="Name of the imported feature set (a table only; required for one).")] = None,
    label_column: Annotated[str, typer.Option(help="Column holding each song's label.")] = "label",
    title_column: Annotated[str, typer.Option(help="Column holding each song's title.")] = "file",
    db: DbPath = DEFAULT_DB,
) -> None:
    """Import precomputed features (the study's CSV, say) as songs without audio, or a whole
    dataset folder written by `musicdb export --format parquet` into a new database.

    Songs are identified by (label, title): importing a second table attaches a second feature
    set to the same songs; re-importing a file changes nothing. A dataset keeps its ids and
    values, so it goes into a new (or empty) database only. All or nothing.
    """
    if file.is_dir():
        if feature_set is not None:
            raise typer.BadParameter("a dataset folder keeps its sets' names; --feature-set is "
                                     "for a table", param_hint="'--feature-set'")
        import_dataset_folder(file, db)
        return
    if feature_set is None:
        raise typer.BadParameter("name the imported feature set (e.g. --feature-set study55)",
                                 param_hint="'--feature-set'")
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


def import_dataset_folder(folder: Path, db: Path) -> None:
    """`import DIR`: the dataset into a new database; a file this command made and could not
    fill is removed again, so a refused import leaves nothing behind."""
    from musicdb.store import database as store
    from musicdb.store.dataset_import import import_dataset, read_manifest
    from musicdb.store.schema import load_migrations
    from musicdb.terminal import plural

    created = not db.exists()
    with user_errors():
        read_manifest(folder, max(m.version for m in load_migrations()))  # before any file
    try:
        with user_errors(), store.connect(db, create=True) as con:
            s = import_dataset(con, folder, db)
    except BaseException:
        if created:
            for made in (db, db.with_name(db.name + ".wal")):
                made.unlink(missing_ok=True)
        raise
    err.print(f"[green]Imported[/green] {plural(s.tables['songs'], 'song')}, "
              f"{plural(s.feature_sets, 'feature-set version')} "
              f"({plural(s.feature_rows, 'feature row')}) and "
              f"{plural(s.tables.get('evaluations', 0), 'evaluation')} into "
              f"{escape(str(db))}.", soft_wrap=True)


@app.command()
def export(
    out_dir: Annotated[Path, typer.Argument(file_okay=False, help="Folder to write into.")],
    format: Annotated[Literal["parquet", "csv", "flat-parquet"], typer.Option(
        "--format", help="parquet: a Hive-partitioned dataset that `musicdb import` reads "
        "back; csv or flat-parquet: one flat file per view.")] = "parquet",
    db: DbPath = DEFAULT_DB,
) -> None:
    """Write the library for other tools: a Parquet dataset (README.md inside) or flat files.

    parquet (the default): songs/, features/feature_set=NAME/version=N/ (one column per
    feature, a row per song and snippet), feature_sets/, feature_names/, song_labels/,
    experiments, evaluations, maps and ingest runs; a folder written before is replaced, any
    other non-empty one refused.

    csv, flat-parquet: library, song_labels, feature_set_summary, features_<set> and
    snippets_<set>, one file each.
    """
    from musicdb.store import database as store

    with user_errors(), store.connect(db, read_only=True) as con:
        if format != "parquet":
            from musicdb.store.export import export as run_export

            written = run_export(con, out_dir, format)
        else:
            from musicdb.store.dataset import export_dataset

            s = export_dataset(con, out_dir)
            written = [(out_dir / t, n) for t, n in s.tables.items()]
            written += [(out_dir / sv.folder, sv.rows) for sv in s.sets]
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
