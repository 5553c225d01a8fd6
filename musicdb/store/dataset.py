"""`musicdb export --format parquet`: the database as a Hive-partitioned Parquet dataset.

Every table that holds data (not the similarity tables, which are derived and rebuilt on
import) becomes a folder of Parquet files; feature values are written wide, one FLOAT column per
feature, per feature-set version under features/feature_set=NAME/version=N/. A manifest
(MANIFEST) names what was written so that `musicdb import DIR` (musicdb.store.dataset_import)
can tell such a folder from any other and check that nothing is missing.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from string import Template

import duckdb

import musicdb
from musicdb.errors import StoreError
from musicdb.store.database import feature_names, quote_ident
from musicdb.store.schema import schema_version

MANIFEST = "musicdb-dataset.json"
UNFINISHED = ".musicdb-export-unfinished"
FORMAT = "musicdb-dataset"
FORMAT_VERSION = 1
PART = "part-0.parquet"  # one file per folder: a reader globs *.parquet, so more may follow
COMPRESSION = "zstd"  # read by DuckDB, pyarrow, polars, pandas and Spark >= 3.2

# Tables copied as they are, with the key they are sorted by (so two exports of one database
# are the same bytes, and a reader sees songs in id order). Order matters on import: a table
# comes after those its rows name.
TABLES = {
    "songs": "song_id",
    "feature_sets": "feature_set_id",
    "feature_names": "feature_set_id, position",
    "experiments": "name",
    "evaluations": "evaluation_id",
    "evaluation_classes": "evaluation_id, label",
    "evaluation_confusion": "evaluation_id, true_label, predicted_label",
    "evaluation_importances": "evaluation_id, feature",
    "map_runs": "run_id",
    "map_points": "run_id, song_id, snippet",
    "ingest_runs": "run_id",
}
# Written for other engines' convenience, ignored by import (the view recomputes it).
DERIVED = {"song_labels": "song_id, rule"}
KEY_COLUMNS = ("song_id", "snippet", "start_s", "end_s")
PARTITION_COLUMNS = ("feature_set", "version")


@dataclass
class SetVersion:
    feature_set_id: int
    name: str
    version: int
    columns: list[str]
    rows: int = 0
    current: bool = False

    @property
    def folder(self) -> str:
        return f"features/feature_set={self.name}/version={self.version}"


@dataclass
class ExportSummary:
    out_dir: Path
    tables: dict[str, int] = field(default_factory=dict)
    sets: list[SetVersion] = field(default_factory=list)
    bytes: int = 0


def set_versions(con: duckdb.DuckDBPyConnection) -> list[SetVersion]:
    rows = con.execute(
        "SELECT feature_set_id, name, version, feature_set_id IN (SELECT feature_set_id "
        "FROM latest_feature_sets) FROM feature_sets ORDER BY name, version").fetchall()
    return [SetVersion(i, n, v, feature_names(con, i), current=c) for i, n, v, c in rows]


def check_columns(sv: SetVersion) -> None:
    """A feature may not share its column's name with a key or partition column, nor with
    another feature in any letter case (DuckDB and Spark match column names ignoring case)."""
    taken = {c.lower() for c in KEY_COLUMNS + PARTITION_COLUMNS}
    seen: set[str] = set()
    for name in sv.columns:
        if name.lower() in taken or name.lower() in seen:
            raise StoreError(
                f"feature set {sv.name!r} version {sv.version}: its feature {name!r} would be "
                f"a second column of that name in the wide table; rename it in the source table "
                f"and import the set again")
        seen.add(name.lower())


def prepare(out_dir: Path) -> None:
    """An empty or missing folder, or a dataset written before (replaced whole): nothing else
    is overwritten."""
    if out_dir.exists() and not out_dir.is_dir():
        raise StoreError(f"{out_dir} is a file; give a folder to write the dataset into")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not ((out_dir / MANIFEST).is_file() or (out_dir / UNFINISHED).is_file()):
            raise StoreError(f"{out_dir} is not empty and holds no musicdb dataset; give a new "
                             f"or empty folder")
        # A dataset written before (or an export that stopped midway): replaced whole.
        for child in out_dir.iterdir():
            if child.name != UNFINISHED:
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        # Until the manifest is written last, this marks the folder as an export under way:
        # import refuses it (no manifest), and the next export may replace it.
        (out_dir / UNFINISHED).write_text("musicdb export under way or stopped\n")
    except OSError as exc:
        raise StoreError(f"cannot write into {out_dir}: {exc.strerror or exc}") from exc


def write_rel(rel: duckdb.DuckDBPyRelation, folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        rel.write_parquet(str(folder / PART), compression=COMPRESSION)
    except (OSError, duckdb.Error) as exc:  # a full disk, a folder we may not write
        raise StoreError(f"cannot write {folder / PART}: {str(exc).splitlines()[0]} (the "
                         f"export is incomplete; run it again when that is fixed)") from exc


def wide_select(sv: SetVersion) -> str:
    """The set version's rows, one FLOAT column per feature, in stored order."""
    values = ", ".join(f"vals[{i}] AS {quote_ident(n)}" for i, n in enumerate(sv.columns, 1))
    return (f"SELECT song_id, snippet, start_s, end_s{', ' if values else ''}{values} "
            f"FROM features WHERE feature_set_id = {int(sv.feature_set_id)} "
            "ORDER BY song_id, snippet")


def export_dataset(con: duckdb.DuckDBPyConnection, out_dir: Path) -> ExportSummary:
    """Write the dataset; returns what was written (rows per table and per set version)."""
    out_dir = Path(out_dir)
    sets = set_versions(con)
    for sv in sets:
        check_columns(sv)
    prepare(out_dir)
    summary = ExportSummary(out_dir, sets=sets)
    for table, order in (TABLES | DERIVED).items():
        write_rel(con.sql(f"SELECT * FROM {table} ORDER BY {order}"), out_dir / table)
        summary.tables[table] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    for sv in sets:
        write_rel(con.sql(wide_select(sv)), out_dir / sv.folder)
        sv.rows = con.execute("SELECT count(*) FROM features WHERE feature_set_id = ?",
                              [sv.feature_set_id]).fetchone()[0]
    (out_dir / "README.md").write_text(readme(summary), encoding="utf-8")
    write_manifest(con, summary)
    (out_dir / UNFINISHED).unlink()
    summary.bytes = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    return summary


def write_manifest(con: duckdb.DuckDBPyConnection, s: ExportSummary) -> None:
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "schema_version": schema_version(con), "musicdb_version": musicdb.__version__,
        "duckdb_version": duckdb.__version__,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "tables": s.tables,
        "derived": sorted(DERIVED),
        "feature_sets": [{"feature_set_id": sv.feature_set_id, "name": sv.name,
                          "version": sv.version, "rows": sv.rows, "current": sv.current,
                          "folder": sv.folder, "columns": len(sv.columns)} for sv in s.sets],
    }
    (s.out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def readme(s: ExportSummary) -> str:
    """The folder's README.md: the fixed text (dataset_readme.md) with this export's numbers."""
    lines = [f"| `{sv.folder}/` | {sv.rows:,} | {len(sv.columns)} |"
             f"{' current' if sv.current else ''} |" for sv in s.sets]
    tables = [f"| `{t}/` | {n:,} |" for t, n in s.tables.items()]
    example = next((sv for sv in s.sets if sv.current), s.sets[0] if s.sets else None)
    template = Template(Path(__file__).with_name("dataset_readme.md").read_text("utf-8"))
    return template.substitute(
        tables="\n".join(tables), sets="\n".join(lines) or "| (none) | | | |",
        set=example.name if example else "default",
        version=example.version if example else 1,
        feature=quote_ident(example.columns[0]) if example and example.columns else '"rms"',
        musicdb=musicdb.__version__, duckdb=duckdb.__version__)
