"""`musicdb map`: songs (or snippets) projected in 2-D as an interactive HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape

from musicdb.cli.app import DEFAULT_DB, DbPath, LabelFrom, app, err, out, user_errors
from musicdb.cli.staleness import warn_if_stale
from musicdb.terminal import plural


@app.command("map")
def map_(
    method: Annotated[Literal["svd", "tsne", "umap"], typer.Option(
        help="svd (fast, linear), tsne (openTSNE; scikit-learn's Barnes-Hut without it) or "
        "umap (needs the optional umap-learn).")] = "tsne",
    labels: Annotated[str | None, typer.Option(
        help="Comma-separated labels to draw, e.g. TheFlashbulb,Zero7 [default: all].")] = None,
    top: Annotated[int | None, typer.Option(min=1, help="Keep the N largest labels.")] = None,
    label_from: LabelFrom = "auto",
    feature_set: Annotated[str | None, typer.Option(
        help="Feature set (default: 'default' if present, else the set with most songs).")
    ] = None,
    unit: Annotated[Literal["song", "snippet"], typer.Option(
        help="song (whole songs) or snippet.")] = "song",
    perplexity: Annotated[float, typer.Option(
        min=1, help="t-SNE perplexity (lowered to (n-1)/3 on small maps; the file is named "
        "after the one used).")] = 30.0,
    learning_rate: Annotated[float | None, typer.Option(
        min=1, help="t-SNE learning rate [default: auto, n/48].")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same map.")] = 0,
    color_by: Annotated[Literal["label", "album"], typer.Option(
        help="label, or album (e.g. one artist's albums with --labels NAME).")] = "label",
    from_run: Annotated[int | None, typer.Option(
        help="Redraw a stored run (see the map_runs table) without projecting again.")] = None,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", dir_okay=False,
        help="The HTML file [default: named after the options, e.g. "
        "map-study55-tsne-song-p30-seed0.html].")] = None,
    open_page: Annotated[bool, typer.Option(
        "--open", help="Open the page in a browser (without one, says where the page is).")
    ] = False,
    db: DbPath = DEFAULT_DB,
) -> None:
    """Map songs (or snippets) in 2-D: an interactive, self-contained HTML page.

    Features are standardised first. One legend entry per label (click toggles it, double
    click isolates it), a stable colour per label; clicking a point plays the song from its
    file and lists its 5 nearest songs. Every run is stored (map_runs, map_points).
    """
    import time
    import webbrowser

    from musicdb.maps.runs import album_warning, default_output, load_run, make_map
    from musicdb.plots.mapplot import write_page
    from musicdb.store import database as store

    names = [s.strip() for s in labels.split(",") if s.strip()] if labels else None
    started = time.perf_counter()
    with user_errors(), store.connect(db, read_only=from_run is not None) as con:
        if from_run is None:
            warn_if_stale(con, db, err)
        if from_run is not None:
            run = load_run(con, from_run)
        else:
            with err.status("Projecting ...") as status:
                run = make_map(con, method=method, feature_set=feature_set,
                               label_from=label_from, labels=names, top=top, unit=unit,
                               perplexity=perplexity, learning_rate=learning_rate, seed=seed,
                               color_by=color_by,
                               on_project=lambda what: status.update(f"Projecting: {what} ..."))
            err.print(f"Projected {plural(len(run.xy), unit)} ({run.method}) in "
                      f"{run.seconds:.1f} s", highlight=False)
            if "perplexity_asked" in run.params:
                err.print(f"[yellow]Perplexity lowered to {run.params['perplexity']:g} for "
                          f"{plural(len(run.xy), 'point')}[/yellow]", highlight=False)
        warning = album_warning(run)
        if warning:
            err.print(f"[yellow]Warning:[/yellow] {escape(warning)}", soft_wrap=True,
                      highlight=False)
        page = output or default_output(method=run.method, feature_set=run.feature_set,
                                        unit=run.unit, labels=run.labels if names else None,
                                        top=top, color_by=run.color_by,
                                        perplexity=run.params.get("perplexity", perplexity),
                                        seed=seed, from_run=from_run)
        write_page(run, page)
    groups = len(set(run.groups))
    out.print(f"Wrote map run {run.run_id} ({plural(len(run.xy), 'point')}, "
              f"{plural(groups, 'album' if run.color_by == 'album' else 'label')}) to "
              f"{escape(str(page))} in {time.perf_counter() - started:.1f} s", soft_wrap=True,
              highlight=False)
    if open_page and not webbrowser.open(page.resolve().as_uri()):
        err.print(f"No browser found to open the page: open {escape(str(page.resolve()))} "
                  "yourself", soft_wrap=True, highlight=False)
