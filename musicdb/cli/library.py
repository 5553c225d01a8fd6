"""`musicdb import`, `export`, `info`: tables in and out, what the database holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from musicdb.cli.app import DEFAULT_DB, DbPath, app, err, out, user_errors
from musicdb.terminal import one_line


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
    from musicdb.store import database as store
    from musicdb.store.importer import import_table

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
    from musicdb.store import database as store
    from musicdb.store.export import export as run_export

    if format not in ("parquet", "csv"):
        raise typer.BadParameter("use parquet or csv", param_hint="--format")
    with user_errors(), store.connect(db, read_only=True) as con:
        written = run_export(con, out_dir, format)
    for path, rows in written:
        out.print(f"{escape(str(path))}\t{rows:,} rows", soft_wrap=True, highlight=False)


@app.command()
def info(db: DbPath = DEFAULT_DB) -> None:
    """What the database holds: songs, snippets, hours, feature sets, top labels."""
    from musicdb.store import database as store
    from musicdb.store.info import library_info

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
