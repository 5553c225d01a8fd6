"""The single writer: feature sets registered, the scan's cheap changes applied, analysed files
written batch by batch, each run recorded. Only the ingest's own process writes."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np

from musicdb.analysis.analyse import EXTRACTORS, Analysis, SetValues, set_params
from musicdb.analysis.features import FrameParams
from musicdb.analysis.like import library_versions
from musicdb.audio.scan import shown
from musicdb.errors import StoreError
from musicdb.ingest.plan import Job, ScanPlan, file_row
from musicdb.store import catalog
from musicdb.store.database import (
    FeatureSetDef,
    create_views,
    ensure_feature_set,
    mark_similarity_stale,
    transaction,
    write_failure,
)

if TYPE_CHECKING:
    from musicdb.ingest.run import IngestSummary


def register_sets(con: duckdb.DuckDBPyConnection, sets: tuple[str, ...],
                  snippet_seconds: float, params: FrameParams) -> dict[str, int]:
    """Each extracted set's id for these parameters (a new version is added when needed).

    A set that this database holds as an imported set of the same name (older musicdb let
    `import --feature-set seed55` through) is skipped with one warning line on stderr, so the
    ingest goes on with the others; with none left it is refused.
    """
    unknown = [s for s in sets if s not in EXTRACTORS]
    if unknown:
        raise StoreError(f"unknown feature set(s) {unknown}; extracted sets: {sorted(EXTRACTORS)}")
    taken = {r[0] for r in con.execute(
        "SELECT DISTINCT name FROM feature_sets WHERE kind <> 'extracted' AND list_contains(?, "
        "name)", [list(sets)]).fetchall()}
    import sys  # the one line goes to stderr, above an ingest's progress bar

    for name in sorted(taken):
        print(f"Warning: skipping feature set {name!r}: this database holds an imported set "
              "of that name (from `musicdb import`), which extracted values must not mix with",
              file=sys.stderr)
    sets = tuple(s for s in sets if s not in taken)
    if not sets:
        raise StoreError(f"nothing to extract: {', '.join(map(repr, sorted(taken)))} is an "
                         "imported feature set in this database; pass --feature-set another set")
    known = {r[0] for r in con.execute("SELECT feature_set_id FROM feature_sets").fetchall()}
    with transaction(con, "the feature sets"):
        ids = {name: ensure_feature_set(con, FeatureSetDef(
            name, "extracted", set_params(name, snippet_seconds, params),
            EXTRACTORS[name].names, EXTRACTORS[name].describe(params),
            **library_versions())) for name in sets}
    if not known.issuperset(ids.values()):  # a new set or version gets its wide views now
        create_views(con)  # (the open made the others': 0.3-1.3 s a run, and catalog writes)
    return ids


def apply_scan(con: duckdb.DuckDBPyConnection, scan: ScanPlan) -> int:
    """Write the plan's cheap changes (tags and folders re-read, moves, missing songs, the new
    mtime of touched files) in one transaction; returns how many song rows changed in what
    the library shows (a touched file's mtime does not count)."""
    with transaction(con, "the scan's changes"):
        # Moved rows carry path/size/mtime/hash, unchanged rows do not: update each kind of row
        # only in the columns it has, or the others' would be overwritten with NULL.
        groups: dict[tuple[str, ...], list[dict]] = {}
        for r in scan.refresh:
            groups.setdefault(tuple(sorted(set(r) - {"song_id"})), []).append(r)
        updated = sum(_refresh(con, rows, list(columns)) for columns, rows in groups.items())
        _refresh(con, scan.touched, ["mtime_ns"])  # not counted: nothing shown changed
        catalog.mark_missing(con, scan.gone)
        if updated or scan.moved or scan.gone:  # labels and paths changed
            mark_similarity_stale(con)
    return updated


def _refresh(con: duckdb.DuckDBPyConnection, rows: list[dict], columns: list[str]) -> int:
    """Update only rows whose values differ; returns how many changed."""
    if not rows:
        return 0
    rows = [{c: r.get(c) for c in ["song_id", *columns]} for r in rows]
    table = catalog._song_table(rows, ["song_id", *columns])
    con.register("_refresh", table)
    differs = " OR ".join(f"songs.{c} IS DISTINCT FROM u.{c}" for c in columns)
    assignments = ", ".join(f"{c} = u.{c}" for c in columns)
    changed = con.execute(
        f"UPDATE songs SET {assignments}, updated_at = current_timestamp FROM _refresh u "
        f"WHERE songs.song_id = u.song_id AND ({differs})"
    ).fetchone()[0]
    con.unregister("_refresh")
    return int(changed)


def stored_analysis(con: duckdb.DuckDBPyConnection, job: Job, set_ids: dict[str, int]
                    ) -> Analysis:
    """The analysis of a file whose content the library holds already: read, not recomputed."""
    (codec, rate, channels, duration), per_set = catalog.stored_values(
        con, job.copy_from, [set_ids[name] for name in job.sets])
    values = {}
    for name in job.sets:
        rows = per_set[set_ids[name]]
        whole = np.asarray(rows[0][3], dtype=np.float32)  # snippet -1 sorts first
        snippets = rows[1:]
        table = np.array([r[3] for r in snippets], np.float32)
        values[name] = SetValues(whole, table.reshape(len(snippets), whole.size),
                                 [(r[1], r[2]) for r in snippets])
    return Analysis(str(job.candidate.path), True, codec=codec, sample_rate=rate,
                    channels=channels, duration_s=duration, values=values)


def write_batch(con: duckdb.DuckDBPyConnection, batch: list[tuple[Job, Analysis]],
                set_ids: dict[str, int]) -> None:
    """Song rows and feature rows of finished files, in one transaction."""
    if not batch:
        return
    new = [job for job, _ in batch if job.song_id is None]
    for job, song_id in zip(new, catalog.reserve_song_ids(con, len(new)), strict=True):
        job.song_id = song_id
    inserts, updates, broken = [], [], []
    rows = catalog.FeatureRows.empty()
    for job, result in batch:
        row = {"song_id": job.song_id, "source": "scan",
               "status": "ok" if result.ok else "error", "error": result.error,
               "codec": result.codec, "sample_rate": result.sample_rate,
               "channels": result.channels, "duration_s": result.duration_s,
               } | file_row(job.candidate, job.tags, job.content_hash)
        (inserts if job.kind == "new" else updates).append(row)
        if not result.ok and job.kind == "changed":
            broken.append(job.song_id)
        for name, values in result.values.items():
            set_id = set_ids[name]
            rows.add(job.song_id, set_id, -1, 0.0, result.duration_s, values.whole)
            for k, ((start, end), vec) in enumerate(zip(values.bounds, values.snippets,
                                                        strict=True)):
                rows.add(job.song_id, set_id, k, start, end, vec)
    # Ctrl-C mid-write rolls it back, so the final write can redo the batch.
    with transaction(con, f"a batch of {len(batch)} files"):
        catalog.insert_songs(con, inserts)
        catalog.update_songs(con, updates, [c for c in catalog.SONG_COLUMNS
                                            if c not in ("song_id", "imported_label",
                                                         "imported_from")])
        catalog.delete_features(con, broken)
        catalog.replace_features(con, rows)
        mark_similarity_stale(con)  # committed with the rows: a kill before the refresh shows


def record_run(con: duckdb.DuckDBPyConnection, started: datetime, paths: list[Path],
               sets: tuple[str, ...], s: IngestSummary) -> None:
    """One row of ingest_runs: what this run found, did and how fast."""
    try:
        con.execute(
            "INSERT INTO ingest_runs (started_at, roots, feature_sets, n_new, n_changed, "
            "n_unchanged, n_moved, n_failed, n_missing, audio_s, wall_s) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [started, [shown(Path(p).expanduser().absolute()) for p in paths], list(sets),
             s.new, s.changed, s.unchanged, s.moved, len(s.failed), s.missing, s.audio_s,
             s.wall_s],
        )
    except duckdb.Error as exc:
        raise write_failure(con, exc, "the run's record") from exc
