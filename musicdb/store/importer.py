"""`musicdb import`: a table of precomputed features becomes songs without audio."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from musicdb.errors import ImportTableError
from musicdb.store.database import (
    FeatureSetDef,
    create_views,
    ensure_feature_set,
    feature_names,
    find_feature_set,
    mark_similarity_stale,
    refresh_similarity,
    transaction,
    write_failure,
)
from musicdb.store.database import quote_ident as q

# The names of the sets `musicdb ingest` extracts (musicdb.analysis.summaries.FEATURE_SETS,
# which the store may not import: it pulls in librosa; tests/test_import_names.py keeps the
# two equal). An imported set under one of these names would block every later ingest.
EXTRACTED_SET_NAMES = ("default", "seed55", "tonal", "musicnn")


@dataclass
class ImportSummary:
    rows: int
    feature_set: str
    n_features: int
    new_songs: int
    changed: int  # songs whose values for this set differed from what was stored
    ignored_columns: list[str]
    created_set: bool


def _some(names: list[str], shown: int = 5) -> str:
    """'3 columns (a, b, c)' or '250 columns (a, b, ... )' — messages stay one readable line."""
    if not names:
        return "no columns"
    listed = ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")
    return f"{len(names)} column{'s' * (len(names) > 1)} ({listed})"


def _reader(path: Path) -> tuple[str, list]:
    name = path.name.lower()
    if name.endswith(".parquet"):
        return "read_parquet(?)", [str(path)]
    if name.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt")):
        # All text: we check every value ourselves and say which ones are not numbers.
        return "read_csv(?, header = true, all_varchar = true)", [str(path)]
    raise ImportTableError(f"{path}: expected a .csv, .csv.gz or .parquet file")


def _columns(con: duckdb.DuckDBPyConnection, source: str, params: list) -> list[str]:
    try:
        return [d[0] for d in con.execute(f"SELECT * FROM {source} LIMIT 0", params).description]
    except duckdb.Error as exc:
        raise ImportTableError(f"cannot read {params[0]}: {str(exc).splitlines()[0]}") from exc


def _numeric_report(con: duckdb.DuckDBPyConnection, source: str, params: list,
                    columns: list[str]) -> dict[str, tuple[int, int, str | None]]:
    """Per column: (finite numbers, values that are not, an example of the latter)."""
    parts = []
    for c in columns:
        num = f"TRY_CAST({q(c)} AS DOUBLE)"
        bad = f"({num} IS NULL OR NOT isfinite({num}))"
        parts.append(f"count(*) FILTER (NOT {bad}), count(*) FILTER ({bad}), "
                     f"any_value(CAST({q(c)} AS VARCHAR)) FILTER ({bad})")
    row = con.execute(f"SELECT {', '.join(parts)} FROM {source}", params).fetchone()
    return {c: tuple(row[3 * i : 3 * i + 3]) for i, c in enumerate(columns)}


def refuse_extracted_name(set_name: str) -> None:
    """An imported set may not take the name of a set that ingest extracts."""
    if set_name in EXTRACTED_SET_NAMES:
        raise ImportTableError(
            f"{set_name!r} is an extracted feature set's name (musicdb computes it from audio, "
            f"and an imported set of that name would block every later ingest); import under "
            f"another name, e.g. --feature-set study_{set_name}")


def import_table(con: duckdb.DuckDBPyConnection, path: Path, *, set_name: str,
                 label_column: str = "label", title_column: str = "file") -> ImportSummary:
    """Load the table; all or nothing. Songs are identified by (label, title)."""
    path = Path(path)
    refuse_extracted_name(set_name)
    source, params = _reader(path)
    columns = _columns(con, source, params)
    for wanted, flag in [(label_column, "--label-column"), (title_column, "--title-column")]:
        if wanted not in columns:
            raise ImportTableError(f"{path.name} has no column {wanted!r} ({flag}); its columns "
                                   f"start {columns[:6]}")
    candidates = [c for c in columns if c not in (label_column, title_column)]
    report = _numeric_report(con, source, params, candidates)
    numeric = [c for c in candidates if report[c][0] > 0]
    ignored = [c for c in candidates if report[c][0] == 0]
    bad = [f"{c!r} ({report[c][1]} values, e.g. {report[c][2]!r})"
           for c in numeric if report[c][1] > 0]
    if bad:
        raise ImportTableError(f"{path.name}: non-numeric or empty values in "
                               + "; ".join(bad[:5]) + (" ..." if len(bad) > 5 else ""))
    if not numeric:
        raise ImportTableError(f"{path.name}: no numeric feature columns found")

    existing = find_feature_set(con, set_name)
    if existing and existing[1] == "extracted":
        raise ImportTableError(
            f"{set_name!r} is an extracted feature set; imported values were computed "
            f"differently — import them under their own name, e.g. --feature-set study_{set_name}"
        )
    if existing:
        known = feature_names(con, existing[0])
        missing = [c for c in known if c not in numeric]
        extra = [c for c in numeric if c not in known]
        if missing or extra:
            raise ImportTableError(
                f"{path.name} does not match feature set {set_name!r}: "
                f"{_some(missing)} missing, {_some(extra)} extra"
            )
        numeric = known  # the set's order, not the file's

    summary = _load_all_or_nothing(con, path, lambda: _load(
        con, source, params, path, set_name, numeric, label_column, title_column,
        existing is None))
    try:
        create_views(con)
    except duckdb.Error as exc:
        raise write_failure(con, exc, f"the views of {set_name!r} (the import is saved)") from exc
    refresh_similarity(con)  # a failure here is one line too; the next writer refreshes
    summary.ignored_columns = ignored
    return summary


def _load_all_or_nothing(con: duckdb.DuckDBPyConnection, path: Path,
                         load: Callable[[], ImportSummary]) -> ImportSummary:
    """Run load in one transaction that also marks the similarity tables stale."""
    def refused(exc: duckdb.Error) -> ImportTableError:
        return ImportTableError(f"import of {path.name} failed: {str(exc).splitlines()[0]}")

    with transaction(con, f"the import of {path.name}", other=refused):
        summary = load()
        mark_similarity_stale(con)
    return summary


def _load(con: duckdb.DuckDBPyConnection, source: str, params: list, path: Path, set_name: str,
          names: list[str], label_column: str, title_column: str, create: bool) -> ImportSummary:
    set_id = ensure_feature_set(con, FeatureSetDef(
        set_name, "imported", {"imported": True, "columns": len(names)}, names,
        [f"imported from {path.name}"] * len(names), source=str(path.absolute()),
    )) if create else find_feature_set(con, set_name)[0]
    vals = ", ".join(f"CAST({q(c)} AS FLOAT)" for c in names)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _import AS SELECT CAST({q(label_column)} AS VARCHAR) AS "
        f"label, CAST({q(title_column)} AS VARCHAR) AS title, [{vals}] AS vals FROM {source}",
        params,
    )
    empty = con.execute("SELECT count(*) FROM _import WHERE label IS NULL OR title IS NULL"
                        ).fetchone()[0]
    if empty:
        raise ImportTableError(f"{path.name}: {empty} rows without a {label_column!r} or "
                               f"{title_column!r} value")
    dupes = con.execute("SELECT label, title, count(*) FROM _import GROUP BY ALL "
                        "HAVING count(*) > 1 LIMIT 3").fetchall()
    if dupes:
        raise ImportTableError(f"{path.name}: (label, title) must be unique; repeated: {dupes}")
    new = con.execute(
        "INSERT INTO songs (song_id, source, status, title, imported_label, imported_from) "
        "SELECT nextval('song_id_seq'), 'import', 'ok', i.title, i.label, ? FROM _import i "
        "WHERE NOT EXISTS (SELECT 1 FROM songs s WHERE s.source = 'import' "
        "AND s.imported_label = i.label AND s.title = i.title)", [str(path.absolute())],
    ).fetchone()[0]
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _import_ids AS SELECT s.song_id, i.vals FROM _import i "
        "JOIN songs s ON s.source = 'import' AND s.imported_label = i.label AND s.title = i.title"
    )
    changed = con.execute(
        "SELECT count(*) FROM features f JOIN _import_ids n USING (song_id) "
        "WHERE f.feature_set_id = ? AND f.snippet = -1 AND f.vals IS DISTINCT FROM n.vals",
        [set_id],
    ).fetchone()[0]
    con.execute("DELETE FROM features WHERE feature_set_id = ? AND song_id IN "
                "(SELECT song_id FROM _import_ids)", [set_id])
    con.execute("INSERT INTO features (song_id, feature_set_id, snippet, start_s, end_s, vals) "
                "SELECT song_id, ?, -1, 0, 0, vals FROM _import_ids", [set_id])
    rows = con.execute("SELECT count(*) FROM _import").fetchone()[0]
    con.execute("DROP TABLE _import")
    con.execute("DROP TABLE _import_ids")
    return ImportSummary(rows, set_name, len(names), int(new), int(changed), [], create)
