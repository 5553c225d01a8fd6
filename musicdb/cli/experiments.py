"""The supervised commands of `musicdb`: experiment create/list/show/delete, evaluate,
evaluations, predict, sql. The logic lives in musicdb.ml and musicdb.plots.report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape
from rich.table import Table

from musicdb.cli.app import DEFAULT_DB, DbPath, LabelFrom, app, err, out, user_errors
from musicdb.cli.output import AsCsv, AsJson, OutputFormat, output_format, print_json, print_rows
from musicdb.terminal import one_line, plural

# Fixed choices are Literal types, so a wrong value is a usage error before any work (the
# same names as musicdb.ml.experiments' UNITS, SPLITS and MODELS, not imported: start-up).
Unit = Literal["song", "snippet"]
Split = Literal["hash", "album"]
Model = Literal["ensemble", "rf", "hgb", "svc", "logreg"]

experiment_app = typer.Typer(no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")


@experiment_app.callback()
def experiment() -> None:
    """Define supervised experiments: labels, label rule, feature set, unit, split, model.

    Five presets follow the study: classical-vs-taylor, taylor-vs-avril, artists, with-boc, xmas.
    """


def literal(*values: object) -> list[str]:
    """Table cells from data: text, never markup ('[/red]' in a label prints as it is), one
    line each (a newline in a path shows as \\n)."""
    return [one_line(str(v)) for v in values]


@experiment_app.command("create")
def experiment_create(
    name: Annotated[str, typer.Argument(help="Lower-case name, e.g. xmas-snippets.")],
    labels: Annotated[str, typer.Option(
        help="Comma-separated labels, e.g. Classical,Xmas (matched up to case and accents), "
        "or 'all': every label of the rule with at least --min-songs songs.")],
    label_from: LabelFrom = "auto",
    feature_set: Annotated[str | None, typer.Option(
        help="Feature set [default: the library's default set when evaluated].")] = None,
    unit: Annotated[Unit, typer.Option(help="song, or snippet (train on snippets, score "
                                       "songs by their snippets' mean probabilities).")
                    ] = "song",
    split: Annotated[Split, typer.Option(help="hash (per song) or album (whole albums on one "
                                         "side).")] = "hash",
    test_fraction: Annotated[float, typer.Option(help="Share of songs on the test side.")] = 0.4,
    seed: Annotated[int, typer.Option(help="Seed of the split hash and the model.")] = 0,
    model: Annotated[Model, typer.Option(help="ensemble, rf, hgb, svc or logreg.")
                     ] = "ensemble",
    min_songs: Annotated[int, typer.Option(
        "--min-songs", min=1, help="With --labels all: leave out labels with fewer songs.")
    ] = 5,
    db: DbPath = DEFAULT_DB,
) -> None:
    """Define an experiment (stored in the database's experiments table)."""
    from musicdb.ml import experiments as ex
    from musicdb.store import database as store

    spec = ex.Experiment(name, [s.strip() for s in labels.split(",") if s.strip()], label_from,
                         feature_set, unit, split, test_fraction, seed, model)
    with user_errors(), store.connect(db) as con:
        made = ex.create(con, spec, min_songs=min_songs)
        counts = ex.label_counts(con, made)
    shown = 12  # --labels all on a large library: the line stays readable
    sizes = ", ".join(f"{escape(label)} {counts.get(label, 0):,}"
                      for label in made.labels[:shown])
    if len(made.labels) > shown:
        sizes += f", and {len(made.labels) - shown:,} more"
    # Folds that every label can fill: `--cv 5` with a 3-song label is refused by evaluate.
    smallest = min((counts.get(label, 0) for label in made.labels), default=0)
    folds = f" --cv {min(5, smallest)}" if smallest >= 2 else ""
    err.print(f"Created experiment [bold]{escape(made.name)}[/bold] with "
              f"{plural(len(made.labels), 'label')} (songs: {sizes}). Try: musicdb evaluate "
              f"--experiment {escape(made.name)}{folds}", soft_wrap=True, highlight=False)
    left_out = [label for label, n in counts.items() if label not in made.labels and n > 0
                and n < min_songs] if labels.strip().lower() == "all" else []
    if left_out:
        names = ", ".join(f"{escape(label)} ({counts[label]})" for label in left_out[:12])
        more = f", and {len(left_out) - 12:,} more" if len(left_out) > 12 else ""
        err.print(f"Left out, with fewer than --min-songs {min_songs} songs: {names}{more}",
                  soft_wrap=True, highlight=False)


EXPERIMENT_COLUMNS = ["name", "preset", "labels", "label_from", "feature_set", "unit", "split",
                      "test_fraction", "seed", "model"]


def _experiment_row(e, *, joined: bool) -> tuple:  # e: experiments.Experiment
    """A row of EXPERIMENT_COLUMNS; `joined`: the labels as one JSON array text (CSV, pipes)."""
    labels = json.dumps(e.labels, ensure_ascii=False) if joined else e.labels
    return (e.name, e.preset, labels, e.label_from, e.feature_set, e.unit, e.split,
            e.test_fraction, e.seed, e.model)


@experiment_app.command("list")
def experiment_list(as_json: AsJson = False, as_csv: AsCsv = False,
                    db: DbPath = DEFAULT_DB) -> None:
    """List experiments (presets first)."""
    from musicdb.ml import experiments as ex
    from musicdb.store import database as store

    fmt = output_format(as_json, as_csv)
    with user_errors(), store.connect(db, read_only=True) as con:
        found = ex.list_all(con)
    if fmt is OutputFormat.JSON:
        print_json([e.as_dict() for e in found])
        return
    if fmt is OutputFormat.CSV or not out.is_terminal:
        print_rows(EXPERIMENT_COLUMNS, [_experiment_row(e, joined=True) for e in found], fmt)
        return
    table = Table("name", "labels", "rule", "feature set", "unit", "split", "test", "model")
    table.columns[0].no_wrap = True
    for e in found:
        table.add_row(*literal(e.name + (" (preset)" if e.preset else ""), len(e.labels),
                               e.label_from, e.feature_set or "(default)", e.unit, e.split,
                               f"{e.test_fraction:g}", e.model))
    out.print(table)


@experiment_app.command("show")
def experiment_show(
    name: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (the default).")] = False,
    as_csv: AsCsv = False,
    db: DbPath = DEFAULT_DB,
) -> None:
    """Show an experiment's definition as JSON (or with --csv, one CSV row)."""
    from musicdb.ml import experiments as ex
    from musicdb.store import database as store

    fmt = output_format(as_json, as_csv)
    with user_errors(), store.connect(db, read_only=True) as con:
        found = ex.get(con, name)
    if fmt is OutputFormat.CSV:
        print_rows(EXPERIMENT_COLUMNS, [_experiment_row(found, joined=True)], fmt)
    else:
        print_json(found.as_dict())


@experiment_app.command("delete")
def experiment_delete(name: str, db: DbPath = DEFAULT_DB) -> None:
    """Delete an experiment with its stored evaluations and model files."""
    from musicdb.ml import experiments as ex
    from musicdb.store import database as store

    with user_errors(), store.connect(db) as con:
        n = ex.delete(con, name, db)
    err.print(f"Deleted experiment {escape(name)} and {plural(n, 'evaluation')}.")


@app.command()
def evaluate(
    experiment: Annotated[str, typer.Option(help="Experiment name (see `experiment list`).")],
    cv: Annotated[int, typer.Option(min=0, help="K-fold grouped, stratified cross-validation "
                                    "over every song; 0 = the experiment's train/test split.")
                  ] = 0,
    prune: Annotated[bool, typer.Option(help="Keep the features a random forest ranks at least "
                                        "mean-important, then refit the model on them.")] = True,
    seed: Annotated[int | None, typer.Option(help="Model and fold seed [default: the "
                                             "experiment's].")] = None,
    model: Annotated[Model | None, typer.Option(
        help="ensemble, rf (the study's 1,000-tree forest), hgb, svc or logreg [default: the "
        "experiment's].", show_default=False)] = None,
    feature_set: Annotated[str | None, typer.Option(help="Override the experiment's set.")
                           ] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Keep older model files of this "
                                       "experiment.")] = False,
    album_effect: Annotated[bool | None, typer.Option(
        "--album-effect/--no-album-effect", help="With --cv: run the CV again with whole albums "
        "in one fold and report how much splitting albums inflates the scores [default: when "
        "most songs carry album tags].", show_default=False)] = None,
    html: Annotated[Path | None, typer.Option(dir_okay=False, help="Write an HTML report.")
                    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    db: DbPath = DEFAULT_DB,
) -> None:
    """Train and score an experiment's model; store the evaluation and the model (skops).

    A progress bar on stderr shows each fit (every fold, the model kept, album folds).
    """
    from musicdb.cli.progress import EvaluateProgress
    from musicdb.ml import experiments as ex
    from musicdb.ml.evaluate import evaluate as run_evaluate
    from musicdb.store import database as store

    with user_errors(), store.connect(db) as con, EvaluateProgress(err) as progress:
        result = run_evaluate(con, ex.get(con, experiment), db, cv=cv, prune=prune, seed=seed,
                              model=model, feature_set=feature_set, keep=keep,
                              measure_album_effect=album_effect, progress=progress)
    if html is not None:
        from musicdb.plots.report import write_report

        with user_errors():
            write_report(html, result)
        err.print(f"Wrote {escape(str(html))}")
    if as_json:
        print_json(result.as_json())
        return
    _render_evaluation(result)


def _render_evaluation(r) -> None:  # r: evaluate.Evaluation
    how = f"{r.cv}-fold CV (mean ± std)" if r.cv else "train/test split"
    out.print(f"[bold]{escape(r.experiment)}[/bold] · {escape(r.feature_set)} · "
              f"{escape(r.model)} · {how} · "
              f"{plural(r.n_songs, 'song')} · {len(r.kept_features)}/"
              f"{plural(r.n_features, 'feature')} · "
              f"evaluation {r.evaluation_id} · {r.wall_s:.1f} s", highlight=False, soft_wrap=True)
    table = Table("metric", "value")
    for k, v in r.metrics.items():
        std = r.stds[k]
        table.add_row(escape(k), f"{v:.3f}" + (f" ± {std:.3f}" if std is not None else ""))
    out.print(table)
    per = Table("label", "precision", "recall", "F1", "support")
    for c in r.per_class:
        per.add_row(escape(c["label"]), f"{c['precision']:.2f}", f"{c['recall']:.2f}",
                    f"{c['f1']:.2f}", str(c["support"]))
    out.print(per)
    out.print("top features: " + ", ".join(
        f"{escape(i['feature'])} {i['importance']:.3f}" for i in r.importances[:8]),
        soft_wrap=True)
    out.print(f"model: {escape(str(r.model_path))}", soft_wrap=True, highlight=False)
    if "album_effect" in r.extra:
        a = r.extra["album_effect"]
        out.print(f"album effect ({plural(a['albums'], 'album')}): accuracy "
                  f"{a['accuracy_album_folds']:.3f} with whole albums per fold, "
                  f"{a['accuracy_inflation']:+.3f} inflation from split albums; macro-F1 "
                  f"{a['macro_f1_album_folds']:.3f} ({a['macro_f1_inflation']:+.3f})",
                  soft_wrap=True, highlight=False)


# The columns `evaluations` shows on a terminal (and a pipe); --json and --csv give them all.
EVALUATION_COLUMNS = ["evaluation_id", "experiment", "feature_set", "model", "cv", "prune",
                      "accuracy", "macro_f1", "log_loss", "n_kept", "n_features", "wall_s"]
EVALUATION_LOOK = {"evaluation_id": str, "cv": str, "accuracy": "{:.3f}".format,
                   "macro_f1": "{:.3f}".format, "log_loss": "{:.3f}".format,
                   "wall_s": "{:.1f}".format}


@app.command()
def evaluations(
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    db: DbPath = DEFAULT_DB,
) -> None:
    """List stored evaluations (the evaluation_comparison view)."""
    from musicdb.ml.evaluate import list_evaluations
    from musicdb.store import database as store

    fmt = output_format(as_json, as_csv)
    with user_errors(), store.connect(db, read_only=True) as con:
        rows = list_evaluations(con, experiment)
    columns = EVALUATION_COLUMNS if fmt is OutputFormat.TABLE else (
        list(rows[0]) if rows else EVALUATION_COLUMNS)
    print_rows(columns, [tuple(r[c] for c in columns) for r in rows], fmt,
               terminal=EVALUATION_LOOK)


PREDICTION_COLUMNS = ["query", "song_id", "rank", "label", "probability"]


@app.command()
def predict(
    items: Annotated[list[str], typer.Argument(help="Audio files, or song ids in the library.")],
    experiment: Annotated[str, typer.Option(help="Whose stored model to use.")],
    top: Annotated[int, typer.Option(min=1, help="Labels shown per item.")] = 3,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print JSON: per item its query, song_id and labels.")] = False,
    as_csv: Annotated[bool, typer.Option(
        "--csv", help="Print CSV: query, song_id, rank, label, probability.")] = False,
    db: DbPath = DEFAULT_DB,
) -> None:
    """Top labels with probabilities from an experiment's stored (hash-checked) model.

    An audio file is analysed first (seconds to a minute; stderr says so).
    """
    from musicdb.ml import predict as pr
    from musicdb.store import database as store

    fmt = output_format(as_json, as_csv)

    def analysing(item: str):
        return err.status(f"analysing {escape(item)} ...")

    with user_errors(), store.connect(db, read_only=True) as con:
        results = pr.predict(con, pr.load(con, db, experiment), items, on_analyse=analysing)
    for r in results:
        r["labels"] = r["labels"][:top]
    if fmt is OutputFormat.JSON:
        print_json(results)
        return
    if fmt is OutputFormat.CSV or not out.is_terminal:
        rows = [(r["query"], r["song_id"], rank, x["label"], x["probability"])
                for r in results for rank, x in enumerate(r["labels"], start=1)]
        print_rows(PREDICTION_COLUMNS, rows, fmt)
        return
    for r in results:
        out.print(f"[bold]{escape(r['query'])}[/bold]: " + ", ".join(
            f"{escape(x['label'])} {x['probability']:.2f}" for x in r["labels"]), soft_wrap=True)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL; may call predict_label(experiment, song_id) "
                                         "and predict_proba(experiment, song_id, label).")],
    as_csv: AsCsv = False,
    as_json: AsJson = False,
    allow_files: Annotated[list[Path] | None, typer.Option(
        "--allow-files", exists=True, metavar="PATH", help="Let the query read files under "
        "this folder (or this one file), e.g. read_csv('DIR/extra.csv'); repeatable. Without "
        "it the query reads only the database.")] = None,
    db: DbPath = DEFAULT_DB,
) -> None:
    """Run one read-only SELECT, with musicdb's Python functions (stored models' predictions).

    Confined: no ATTACH, COPY, SET, PRAGMA or LOAD, no files but --allow-files ones.
    """
    from musicdb.ml import predict as pr
    from musicdb.store import database as store

    fmt = output_format(as_json, as_csv)
    with user_errors(), store.connect(db, read_only=True) as con:
        names, rows = pr.run_sql(con, db, query, allow_files or ())
    if fmt is OutputFormat.JSON:  # one line, as scripts of `musicdb sql --json` expect
        print(json.dumps([dict(zip(names, r, strict=True)) for r in rows], default=str))
    else:
        print_rows(names, rows, fmt)
