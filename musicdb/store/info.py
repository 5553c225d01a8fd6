"""`musicdb info`: what the database holds."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from musicdb.store.database import schema_version, similarity_stale


@dataclass
class LibraryInfo:
    schema_version: int
    songs: dict[str, int]  # by status, imported songs counted apart
    imported: int
    snippets: int
    audio_hours: float
    feature_sets: list[tuple]  # name, version, kind, n_features, songs, snippets
    top_labels: list[tuple[str, int]]
    recent_errors: list[tuple[str, str]]
    # The similarity tables lag the data (a run stopped before refreshing them): `similar` and
    # the shell's macros answer from the old numbers until the next write command rebuilds them.
    similarity_stale: bool = False


def library_info(con: duckdb.DuckDBPyConnection, *, top: int = 10) -> LibraryInfo:
    by_status = dict(con.execute(
        "SELECT status, count(*) FROM songs WHERE source = 'scan' GROUP BY 1").fetchall())
    imported = con.execute("SELECT count(*) FROM songs WHERE source = 'import'").fetchone()[0]
    hours = con.execute("SELECT coalesce(sum(duration_s), 0) / 3600 FROM songs "
                        "WHERE source = 'scan' AND status = 'ok'").fetchone()[0]
    # Snippets of songs, not rows: each feature set stores its own row per snippet.
    snippets = con.execute("SELECT count(*) FROM (SELECT DISTINCT song_id, snippet FROM features "
                           "WHERE snippet >= 0)").fetchone()[0]
    sets = con.execute("SELECT name, version, kind, n_features, songs, snippets "
                       "FROM feature_set_summary").fetchall()
    labels = con.execute(
        "SELECT label, count(*) AS n FROM song_labels l JOIN songs s USING (song_id) "
        "WHERE rule = 'auto' AND s.status <> 'error' GROUP BY label ORDER BY n DESC, label "
        "LIMIT ?", [top]).fetchall()
    errors = con.execute("SELECT path, error FROM songs WHERE status = 'error' "
                         "ORDER BY updated_at DESC LIMIT 5").fetchall()
    return LibraryInfo(schema_version(con), {k: by_status.get(k, 0) for k in
                                             ("ok", "error", "missing")},
                       imported, snippets, float(hours), sets, labels, errors,
                       similarity_stale(con))
