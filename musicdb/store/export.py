"""`musicdb export --format csv|flat-parquet`: one flat file per view (library, labels, and every
feature set wide, joined to the labels). `--format parquet` writes the dataset instead
(musicdb.store.dataset)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from musicdb.store.database import quote_ident


def export(con: duckdb.DuckDBPyConnection, out_dir: Path, fmt: str) -> list[tuple[Path, int]]:
    """Write one file per view ("flat-parquet" or "csv"); returns (path, rows) of each file."""
    if fmt not in ("flat-parquet", "csv"):
        raise ValueError(f"format {fmt!r}: use flat-parquet or csv")
    ext = fmt.removeprefix("flat-")
    out_dir.mkdir(parents=True, exist_ok=True)
    sets = [r[0] for r in con.execute(
        "SELECT DISTINCT name FROM feature_sets ORDER BY 1").fetchall()]
    views = ["library", "song_labels", "feature_set_summary"]
    views += [f"{kind}_{s}" for s in sets for kind in ("features", "snippets")]
    written = []
    for view in views:
        rel = con.sql(f"SELECT * FROM {quote_ident(view)}")
        rows = con.execute(f"SELECT count(*) FROM {quote_ident(view)}").fetchone()[0]
        if rows == 0 and view.startswith("snippets_"):
            continue  # imported sets have no snippets
        target = out_dir / f"{view}.{ext}"
        if ext == "parquet":
            rel.write_parquet(str(target))
        else:
            rel.write_csv(str(target), header=True)
        written.append((target, rows))
    return written
