"""The label-by-label distance matrix behind `musicdb heatmap`, clustered; musicdb.plots.heatmap
draws it as one offline HTML file."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class LabelMatrix:
    """Distances between labels, rows and columns in clustering order, ready to draw."""

    matrix: np.ndarray  # (labels, labels), symmetric
    names: list[str]
    ticks: list[str]  # "name (N songs)"
    title: str


def label_matrix(con: duckdb.DuckDBPyConnection, *, feature_set: str | None,
                 label_from: str = "auto", method: str = "centroid",
                 min_songs: int = 1) -> LabelMatrix:
    """The label-by-label distance matrix of the artist_distances view, clustered."""
    require_choice(method, METHODS, "--method", SimilarityError)
    require_choice(label_from, LABEL_RULES, "--label-from", SimilarityError)
    column, meaning = METHODS[method]
    feature_set, set_id = resolve_feature_set(con, feature_set)

    labels = con.execute(
        # A label's distance to itself, which only 'songs' draws (its songs are apart too).
        "SELECT label, songs, label_distance(?, centroid, centroid, variance, variance) "
        "FROM artist_centroids "
        "WHERE feature_set_id = ? AND label_from = ? AND songs >= ? ORDER BY label",
        [method, set_id, label_from, min_songs]).fetchall()
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
    if method == "songs":
        np.fill_diagonal(matrix, [itself for _, _, itself in labels])
    matrix = matrix[np.ix_(order, order)]
    names = [labels[i][0] for i in order]
    ticks = [f"{name} ({labels[i][1]:,} songs)" for name, i in zip(names, order, strict=True)]
    title = (f"Label distances: feature set {feature_set}, labels by {label_from}, "
             f"method {method}<br><sup>{meaning}, on standardised features</sup>")
    return LabelMatrix(matrix, names, ticks, title)


def _cluster_order(matrix: np.ndarray) -> np.ndarray:
    """Leaf order of an average-linkage clustering, similar labels next to each other."""
    from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    condensed = squareform(matrix, checks=False)
    tree = linkage(condensed, method="average")
    return leaves_list(optimal_leaf_ordering(tree, condensed))
