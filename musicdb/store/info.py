"""`musicdb info`: what the database holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb

from musicdb.store.database import schema_version, similarity_stale

# The columns of LibraryInfo.feature_sets (and of `musicdb info --csv`).
SET_COLUMNS = ("feature_set", "version", "kind", "features", "songs", "snippets")

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

    def as_json(self) -> dict[str, Any]:
        """Every number of `musicdb info`, named: what `info --json` prints."""
        return {
            "schema_version": self.schema_version,
            "songs": self.songs | {"imported": self.imported},
            "snippets": self.snippets,
            "audio_hours": self.audio_hours,
            "feature_sets": [dict(zip(SET_COLUMNS, row, strict=True))
                             for row in self.feature_sets],
            "top_labels": [{"label": label, "songs": n} for label, n in self.top_labels],
            "recent_errors": [{"path": path, "error": error}
                              for path, error in self.recent_errors],
            "similarity_stale": self.similarity_stale,
        }


def library_info(con: duckdb.DuckDBPyConnection, *, top: int = 10) -> LibraryInfo:
    by_status = dict(con.execute(
        "SELECT status, count(*) FROM songs WHERE source = 'scan' GROUP BY 1").fetchall())
    imported = con.execute("SELECT count(*) FROM songs WHERE source = 'import'").fetchone()[0]
    hours = con.execute("SELECT coalesce(sum(duration_s), 0) / 3600 FROM songs "
                        "WHERE source = 'scan' AND status = 'ok'").fetchone()[0]
    # Snippets of songs, each counted once: every feature set stores its own row per snippet
    # (two sets over 156 snippets are 312 rows); the per-set counts are in `sets`.
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


def partial_sets(con: duckdb.DuckDBPyConnection,
                 skip: tuple[str, ...] = ()) -> list[tuple[str, int, int]]:
    """(set, songs it covers, songs with audio) for each extracted set, other than `skip`,
    whose current version lacks some of the library's analysed songs: a set added with
    --feature-set to part of a library, which a plain ingest does not extend."""
    return con.execute(
        "WITH audio AS (SELECT count(*) AS n FROM songs WHERE status = 'ok' AND source = 'scan'), "
        "covered AS (SELECT l.feature_set, count(DISTINCT f.song_id) AS n "
        "FROM latest_feature_sets l JOIN feature_sets s USING (feature_set_id) "
        "JOIN features f USING (feature_set_id) JOIN songs USING (song_id) "
        "WHERE s.kind = 'extracted' AND f.snippet = -1 AND songs.status = 'ok' "
        "AND NOT list_contains(?::VARCHAR[], l.feature_set) GROUP BY ALL) "
        "SELECT c.feature_set, c.n, a.n FROM covered c, audio a WHERE c.n < a.n "
        "ORDER BY c.feature_set", [list(skip)]).fetchall()
