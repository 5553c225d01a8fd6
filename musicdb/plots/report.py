"""The HTML report of one evaluation: metrics table, confusion heatmap, per-class bars and
feature importances, in one self-contained page (plotly.js inside)."""

from __future__ import annotations

from pathlib import Path

from musicdb.errors import ExperimentError


def figure(ev):  # ev: evaluate.Evaluation
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    labels = [c["label"] for c in ev.per_class]
    fig = make_subplots(
        rows=2, cols=2, vertical_spacing=0.14, horizontal_spacing=0.14,
        specs=[[{"type": "table"}, {"type": "heatmap"}], [{"type": "bar"}, {"type": "bar"}]],
        subplot_titles=("Metrics", "Confusion (rows: true, columns: predicted)",
                        "Per class", "Feature importance (random forest)"))
    names = list(ev.metrics)
    values = [f"{ev.metrics[k]:.3f}" + (f" ± {ev.stds[k]:.3f}" if ev.stds[k] is not None else "")
              for k in names]
    kept = f"{len(ev.kept_features)} of {ev.n_features}"
    fig.add_trace(go.Table(header={"values": ["metric", "value"]},
                           cells={"values": [[*names, "features kept"], [*values, kept]]}),
                  row=1, col=1)
    z = [[ev.confusion[t][p] for p in labels] for t in labels]
    fig.add_trace(go.Heatmap(z=z, x=labels, y=labels, colorscale="Blues", showscale=False,
                             hovertemplate="true %{y}<br>predicted %{x}<br>%{z} songs"
                             "<extra></extra>"), row=1, col=2)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    for metric in ("precision", "recall", "f1"):
        fig.add_trace(go.Bar(name=metric, x=labels, y=[c[metric] for c in ev.per_class]),
                      row=2, col=1)
    top = ev.importances[:25]
    fig.add_trace(go.Bar(name="importance", x=[i["importance"] for i in top][::-1],
                         y=[i["feature"] for i in top][::-1], orientation="h",
                         marker_color=["#2a7" if i["kept"] else "#bbb" for i in top][::-1]),
                  row=2, col=2)
    how = f"{ev.cv}-fold CV" if ev.cv else "train/test split"
    fig.update_layout(height=1000, barmode="group",
                      title=f"{ev.experiment} · {ev.feature_set} · {ev.model} · {how} · "
                            f"{ev.n_songs} songs · evaluation {ev.evaluation_id}")
    return fig


def write_report(path: Path, ev) -> None:
    """Write the report page (plotly.js inline, so it works offline)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure(ev).write_html(path, include_plotlyjs=True, full_html=True)
    except OSError as exc:  # the evaluation is stored already: say so, in one line
        raise ExperimentError(f"evaluation {ev.evaluation_id} is stored, but {path} cannot "
                              f"be written: {exc.strerror or exc}") from exc
