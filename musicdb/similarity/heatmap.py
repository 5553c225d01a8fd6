"""An interactive heatmap of the distances between labels (artists), as one offline HTML file."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np

from musicdb.choices import LABEL_RULES, require_choice
from musicdb.errors import SimilarityError
from musicdb.store.database import resolve_feature_set

# method -> (column of the artist_distances view, what it measures)
METHODS = {
    "centroid": ("euclidean", "euclidean distance between centroids"),
    "cosine": ("cosine", "cosine distance between centroids"),
    "songs": ("song_rms", "RMS distance between the labels' songs"),
}


def write_heatmap(con: duckdb.DuckDBPyConnection, out: Path, *, feature_set: str | None,
                  label_from: str = "auto", method: str = "centroid",
                  min_songs: int = 1) -> int:
    """Write the label-by-label distance matrix, clustered, to `out`; the number of labels."""
    require_choice(method, METHODS, "--method", SimilarityError)
    require_choice(label_from, LABEL_RULES, "--label-from", SimilarityError)
    column, meaning = METHODS[method]
    feature_set, set_id = resolve_feature_set(con, feature_set)

    labels = con.execute(
        "SELECT label, songs, variance FROM artist_centroids "
        "WHERE feature_set_id = ? AND label_from = ? AND songs >= ? ORDER BY label",
        [set_id, label_from, min_songs]).fetchall()
    if len(labels) < 2:
        raise SimilarityError(
            f"a heatmap needs at least 2 labels; feature set {feature_set!r} has {len(labels)} "
            f"under --label-from {label_from} with at least {min_songs} songs")
    index = {name: i for i, (name, _, _) in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)))
    pairs = con.execute(
        f"SELECT artist, other, {column} FROM artist_distances "
        "WHERE feature_set = ? AND label_from = ? AND artist < other "
        "AND artist_songs >= ? AND other_songs >= ?",
        [feature_set, label_from, min_songs, min_songs]).fetchall()
    for a, b, d in pairs:  # one triangle, mirrored: symmetric by construction
        matrix[index[a], index[b]] = matrix[index[b], index[a]] = max(d, 0.0)

    order = _cluster_order(matrix)
    if method == "songs":  # a label's songs are apart from each other too
        np.fill_diagonal(matrix, [np.sqrt(2 * v) for _, _, v in labels])
    matrix = matrix[np.ix_(order, order)]
    names = [labels[i][0] for i in order]
    ticks = [f"{name} ({labels[i][1]:,} songs)" for name, i in zip(names, order, strict=True)]
    figure = _figure(matrix, names, ticks,
                     f"Label distances: feature set {feature_set}, labels by {label_from}, "
                     f"method {method}<br><sup>{meaning}, on standardised features</sup>")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        figure.write_html(out, include_plotlyjs=True, full_html=True)  # plotly.js inline: offline
    except OSError as exc:
        raise SimilarityError(f"cannot write {out}: {exc.strerror or exc}") from exc
    return len(labels)


def _cluster_order(matrix: np.ndarray) -> np.ndarray:
    """Leaf order of an average-linkage clustering, similar labels next to each other."""
    from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    condensed = squareform(matrix, checks=False)
    tree = linkage(condensed, method="average")
    return leaves_list(optimal_leaf_ordering(tree, condensed))


def _figure(matrix: np.ndarray, names: list[str], ticks: list[str], title: str):
    import plotly.graph_objects as go

    n = len(names)
    pair_names = [[[names[i], names[j]] for j in range(n)] for i in range(n)]
    fig = go.Figure(go.Heatmap(
        z=matrix, x=ticks, y=ticks, customdata=pair_names, colorscale="Viridis",
        colorbar={"title": {"text": "distance"}},
        hovertemplate="%{customdata[0]} ↔ %{customdata[1]}<br>distance %{z:.3f}<extra></extra>",
    ))
    size = max(600, 160 + 22 * n)
    fig.update_layout(title={"text": title}, width=size + 260, height=size,
                      xaxis={"type": "category", "tickangle": -45},
                      yaxis={"type": "category", "autorange": "reversed"})
    return fig
