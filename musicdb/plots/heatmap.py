"""The heatmap page: a label-by-label distance matrix as one self-contained HTML file."""

from __future__ import annotations

from pathlib import Path

from musicdb.errors import SimilarityError
from musicdb.similarity.heatmap import LabelMatrix


def figure(m: LabelMatrix):
    """A plotly heatmap; hovering a cell shows both names and their distance."""
    import plotly.graph_objects as go

    n = len(m.names)
    pair_names = [[[m.names[i], m.names[j]] for j in range(n)] for i in range(n)]
    fig = go.Figure(go.Heatmap(
        z=m.matrix, x=m.ticks, y=m.ticks, customdata=pair_names, colorscale="Viridis",
        colorbar={"title": {"text": "distance"}},
        hovertemplate="%{customdata[0]} ↔ %{customdata[1]}<br>distance %{z:.3f}<extra></extra>",
    ))
    size = max(600, 160 + 22 * n)
    fig.update_layout(title={"text": m.title}, width=size + 260, height=size,
                      xaxis={"type": "category", "tickangle": -45},
                      yaxis={"type": "category", "autorange": "reversed"})
    return fig


def write_heatmap(out: Path, m: LabelMatrix) -> None:
    """Write the page to `out`, plotly.js inline so it works offline."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        figure(m).write_html(out, include_plotlyjs=True, full_html=True)
    except OSError as exc:
        raise SimilarityError(f"cannot write {out}: {exc.strerror or exc}") from exc
