"""`musicdb export --format parquet` and `musicdb import DIR` at scale, and the choice of writer.

Times the wide feature files written two ways from the same rows — DuckDB's Parquet writer over
the `vals[i] AS name` select (what musicdb.store.dataset uses) and pyarrow.dataset.write_dataset
over the list column split into float32 columns with numpy — then the whole export and the whole
import of the library. Default input: benchmarks/.cache/similar-100k.duckdb (copied; the cache
stays read-only).

    .venv/bin/python benchmarks/dataset.py [--db FILE]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from musicdb.store import database as store
from musicdb.store.dataset import COMPRESSION, export_dataset, set_versions, wide_select
from musicdb.store.dataset_import import import_dataset

CACHE = Path(__file__).parent / ".cache" / "similar-100k.duckdb"


def timed(what: str, fn) -> float:
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    print(f"{what:<48} {seconds:7.2f} s")
    return seconds


def duckdb_writer(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    for sv in set_versions(con):
        folder = out / sv.folder
        folder.mkdir(parents=True)
        con.sql(wide_select(sv)).write_parquet(str(folder / "part-0.parquet"),
                                               compression=COMPRESSION)


def pyarrow_writer(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    for sv in set_versions(con):
        t = con.execute("SELECT song_id, snippet, start_s, end_s, vals FROM features "
                        "WHERE feature_set_id = ? ORDER BY song_id, snippet",
                        [sv.feature_set_id]).arrow()
        if isinstance(t, pa.RecordBatchReader):
            t = t.read_all()
        flat = t.column("vals").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        wide = flat.astype(np.float32, copy=False).reshape(t.num_rows, len(sv.columns))
        columns = {c: t.column(c) for c in ("song_id", "snippet", "start_s", "end_s")}
        columns |= {name: pa.array(wide[:, i]) for i, name in enumerate(sv.columns)}
        table = pa.table(columns).append_column("feature_set", pa.array(
            [sv.name] * t.num_rows)).append_column("version", pa.array([sv.version] * t.num_rows))
        ds.write_dataset(table, out / "features", format="parquet", partitioning=[
            "feature_set", "version"], partitioning_flavor="hive",
            existing_data_behavior="overwrite_or_ignore",
            file_options=ds.ParquetFileFormat().make_write_options(compression=COMPRESSION))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", type=Path, default=CACHE)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        db = tmp / "library.duckdb"
        shutil.copy(args.db, db)
        with store.connect(db) as con:  # migrates a cached file of an older schema
            songs, rows = con.execute("SELECT (SELECT count(*) FROM songs), count(*) "
                                      "FROM features").fetchone()
        print(f"{songs:,} songs, {rows:,} feature rows")
        with store.connect(db, read_only=True) as con:
            for attempt in (1, 2):  # twice each, alternating: the first pays for cold pages
                a, b = tmp / f"a{attempt}", tmp / f"b{attempt}"
                timed(f"features: DuckDB write_parquet ({attempt})",
                      lambda a=a: duckdb_writer(con, a))
                timed(f"features: pyarrow.dataset.write_dataset ({attempt})",
                      lambda b=b: pyarrow_writer(con, b))
            timed("export --format parquet (whole dataset)",
                  lambda: export_dataset(con, tmp / "ds"))
        size = sum(p.stat().st_size for p in (tmp / "ds").rglob("*") if p.is_file())
        print(f"{'dataset size':<48} {size / 1e6:7.1f} MB")
        new = tmp / "imported.duckdb"
        with store.connect(new, create=True) as con:
            timed("import DIR (incl. similarity refresh)",
                  lambda: import_dataset(con, tmp / "ds", new))


if __name__ == "__main__":
    main()
