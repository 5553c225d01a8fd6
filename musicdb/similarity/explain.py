"""Why a result is near: per result, the features where both sides are closest and furthest
apart, in raw units (`musicdb similar --explain`)."""

from __future__ import annotations

import duckdb
import numpy as np

from musicdb.similarity.similar import Similar


def explain(con: duckdb.DuckDBPyConnection, answer: Similar, *, top: int = 3) -> list[dict]:
    """Per result: the features where both sides are closest and furthest apart (raw values)."""
    set_id = con.execute("SELECT feature_set_id FROM latest_feature_sets WHERE feature_set = ?",
                         [answer.feature_set]).fetchone()[0]
    names = [r[0] for r in con.execute("SELECT name FROM feature_names WHERE feature_set_id = ? "
                                       "ORDER BY position", [set_id]).fetchall()]
    means, stds = (np.asarray(x) for x in con.execute(
        "SELECT means, stds FROM feature_stats WHERE feature_set_id = ?", [set_id]).fetchone())

    def vector(item: str | int) -> np.ndarray:
        if answer.kind == "artists":
            row = con.execute("SELECT centroid FROM artist_centroids WHERE feature_set_id = ? "
                              "AND label_from = ? AND label = ?",
                              [set_id, answer.label_from, item]).fetchone()
        else:
            row = con.execute("SELECT z FROM song_vectors WHERE feature_set_id = ? AND "
                              "song_id = ?", [set_id, item]).fetchone()
        return np.asarray(row[0], dtype=np.float64)

    # A file analysed just now has no stored vector, but the one it was compared with.
    a = vector(answer.key) if answer.key is not None else np.asarray(answer.z, dtype=np.float64)

    def describe(i: int, b: np.ndarray) -> dict:
        return {"feature": names[i], "query": float(means[i] + a[i] * stds[i]),
                "result": float(means[i] + b[i] * stds[i]), "z_gap": float(abs(a[i] - b[i]))}

    out = []
    for result in answer.results:
        b = vector(result["name"] if answer.kind == "artists" else result["song_id"])
        order = np.argsort(np.abs(a - b), kind="stable")
        out.append({"closest": [describe(i, b) for i in order[:top]],
                    "apart": [describe(i, b) for i in order[::-1][:top]]})
    return out
