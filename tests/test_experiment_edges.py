"""Issue 16 for experiments, evaluate and predict: small classes, names that do not exist,
databases that do not exist, progress on a terminal, output for pipes and scripts."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
from rich.console import Console

import musicdb.cli.experiments
from musicdb.ml import models
from tests.conftest import import_study
from tests.smaller_models import fewer_trees

GAMES = {"Wesnoth": 3, "Nexuiz": 4, "HyperRogue": 3, "Warzone2100": 6}


def write_games(path: Path, counts: dict[str, int] = GAMES) -> Path:
    """Few songs per label, 6 features that separate the labels, an album column."""
    rng = np.random.default_rng(3)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "file", *(f"f{i}" for i in range(6))])
        for k, (label, n) in enumerate(counts.items()):
            for i in range(n):
                w.writerow([label, f"{label}-{i}", *(rng.normal(size=6) + 3 * k)])
    return path


@pytest.fixture
def games(run, tmp_path: Path) -> Path:
    db = tmp_path / "games.duckdb"
    run("import", write_games(tmp_path / "games.csv"), "--feature-set", "games", "--db", db)
    return db


# Sees each fit on the live display, which redraws 10 times a second: a fit must outlast a
# redraw (the 200-tree pruning forest does; a 20-tree one did not, once).
FULL_FORESTS = {"test_evaluate_shows_each_fit_on_a_terminal"}


@pytest.fixture(autouse=True)
def _fewer_trees(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests check messages, folds and outputs, not scores: the pruning forest and the
    ensemble's forest with 20 trees (the default ensemble's model file was most of a test)."""
    if request.node.originalname not in FULL_FORESTS:
        fewer_trees(monkeypatch)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return import_study(tmp_path_factory.mktemp("edges"))


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def one_error(result) -> str:
    found = lines(result.output)
    assert result.exit_code == 1, result.output
    assert len(found) == 1, result.output
    assert found[0].startswith("Error: ")
    return found[0]


# --- §2: only ingest and import create a database ----------------------------------------

@pytest.mark.parametrize("args", [
    ["map", "--method", "svd"], ["evaluate", "--experiment", "xmas"], ["experiment", "list"],
    ["experiment", "create", "foo", "--labels", "A,B"], ["experiment", "show", "xmas"],
    ["experiment", "delete", "xmas"], ["evaluations"], ["predict", "1", "--experiment", "xmas"],
], ids=lambda args: "-".join(args[:2]))
def test_a_mistyped_db_creates_nothing(run, tmp_path, args):
    db = tmp_path / "typo.duckdb"
    line = one_error(run(*args, "--db", db, code=None))
    assert line == (f"Error: no database at {db}; create one with `musicdb ingest` or "
                    "`musicdb import`")
    assert list(tmp_path.iterdir()) == []


# --- §2: import under an extracted set's name ----------------------------------------------

@pytest.mark.parametrize("name", ["seed55", "default"])
def test_import_under_an_extracted_name_is_refused_before_anything_is_made(run, tmp_path, name):
    db = tmp_path / "new.duckdb"
    line = one_error(run("import", write_games(tmp_path / "g.csv"), "--feature-set", name,
                         "--db", db, code=None))
    assert f"'{name}' is an extracted feature set's name" in line
    assert f"--feature-set study_{name}" in line
    assert not db.exists()


def test_the_store_knows_every_extracted_set_name():
    from musicdb.analysis.summaries import FEATURE_SETS
    from musicdb.store.importer import EXTRACTED_SET_NAMES

    assert set(EXTRACTED_SET_NAMES) == set(FEATURE_SETS)


# --- §3: small classes -----------------------------------------------------------------------

def test_small_classes_evaluate_or_say_what_is_needed(run, games):
    created = run("experiment", "create", "games", "--labels",
                  "Wesnoth,Nexuiz,HyperRogue,Warzone2100", "--label-from", "imported",
                  "--db", games)
    assert "with 4 labels (songs: Wesnoth 3, Nexuiz 4, HyperRogue 3, Warzone2100 6)" in \
        " ".join(created.output.split())
    # 5 folds cannot each hold one of 3 songs: one line saying how many can.
    line = one_error(run("evaluate", "--experiment", "games", "--cv", "5", "--db", games,
                         code=None))
    assert "--cv 5: label 'HyperRogue' has only 3 songs" in line
    assert "use --cv 3 or fewer" in line
    # 3 folds: the default ensemble calibrates its SVC on fewer internal folds and works.
    result = json.loads(run("evaluate", "--experiment", "games", "--cv", "3", "--json",
                            "--db", games).stdout)
    assert result["n_songs"] == 16
    assert result["model"] == "ensemble"
    assert sum(c["support"] for c in result["per_class"]) == 16
    assert "Traceback" not in run("predict", "1", "--experiment", "games", "--db", games).output


def first_seed(db: Path, create: list[str], wanted, prefix: str = "e") -> int:
    """Create experiments e0, e1, ... until the split of one satisfies wanted(sides), where
    sides maps label -> {side: songs}; returns its seed."""
    from typer.testing import CliRunner

    from musicdb.cli import app

    for seed in range(60):
        result = CliRunner().invoke(app, ["experiment", "create", f"{prefix}{seed}", *create,
                                          "--seed", str(seed), "--db", str(db)])
        assert result.exit_code == 0, result.output
        with duckdb.connect(str(db), read_only=True) as con:
            rows = con.execute("SELECT label, side, count(*) FROM splits WHERE experiment = ? "
                               "GROUP BY ALL", [f"{prefix}{seed}"]).fetchall()
        sides: dict[str, dict[str, int]] = {}
        for label, side, n in rows:
            sides.setdefault(label, {})[side] = n
        if wanted(sides):
            return seed
    pytest.fail("no seed gave the split wanted")


def test_a_label_with_one_training_song_is_one_line(run, tmp_path):
    db = tmp_path / "tiny.duckdb"
    run("import", write_games(tmp_path / "t.csv", {"A": 2, "B": 8}), "--feature-set", "tiny",
        "--db", db)
    seed = first_seed(db, ["--labels", "A,B", "--test-fraction", "0.5"],
                      lambda sides: sides["A"].get("train") == 1)
    line = one_error(run("evaluate", "--experiment", f"e{seed}", "--db", db, code=None))
    assert "label 'A' has only 1 training song here, and the ensemble model needs 2" in line
    assert "--model rf, hgb or logreg" in line
    run("evaluate", "--experiment", f"e{seed}", "--model", "logreg", "--db", db)
    # A split that leaves one label alone on the training side: one line too.
    seed = first_seed(db, ["--labels", "A,B", "--test-fraction", "0.5"],
                      lambda sides: "train" not in sides["A"], prefix="f")
    result = run("evaluate", "--experiment", f"f{seed}", "--model", "logreg", "--db", db,
                 code=1)
    assert lines(result.output)[-1] == (
        "Error: every training song is 'B': a model needs two labels to tell apart; lower "
        "--test-fraction, or change --split or --seed")


def test_album_split_warns_when_a_label_has_no_training_song(run, tmp_path):
    """All of Solo's songs are on one album, which the album split puts on the test side."""
    db = tmp_path / "albums.duckdb"
    run("import", write_games(tmp_path / "a.csv", {"Solo": 4, "Band": 12, "Trio": 12}),
        "--feature-set", "alb", "--db", db)
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE songs SET album = CASE WHEN imported_label = 'Solo' THEN 'Only' "
                    "ELSE 'B' || (song_id % 4) END")
    seed = first_seed(db, ["--labels", "Solo,Band,Trio", "--split", "album", "--model",
                           "logreg"],
                      lambda sides: list(sides["Solo"]) == ["test"]
                      and all(len(sides[label]) == 2 for label in ("Band", "Trio")))
    result = run("evaluate", "--experiment", f"e{seed}", "--db", db)
    warnings = [line for line in lines(result.output) if line.startswith("Warning:")]
    assert warnings == ["Warning: label 'Solo' has 0 training songs (whole albums go to one "
                        "side): the model cannot predict it; lower --test-fraction, or change "
                        "--split or --seed"]


# --- §3: progress -----------------------------------------------------------------------------

def test_evaluate_shows_each_fit_on_a_terminal(run, games, monkeypatch):
    screen = io.StringIO()
    monkeypatch.setattr(musicdb.cli.experiments, "err",
                        Console(file=screen, force_terminal=True, color_system=None, width=150))
    run("experiment", "create", "games", "--labels", "all", "--min-songs", "3", "--model",
        "logreg", "--db", games)
    run("evaluate", "--experiment", "games", "--cv", "3", "--db", games)
    shown = screen.getvalue()
    for fit in ("fold 1/3 · logreg", "fold 3/3 · logreg",
                "the model kept, on all 16 songs · logreg"):
        assert fit in shown
    assert "/4 fits" in shown  # three folds and the model kept


# --- §4: names that do not exist ---------------------------------------------------------------

def test_unknown_labels_are_named_with_suggestions(run, study):
    line = one_error(run("experiment", "create", "ghosts", "--labels", "Foo,Bar", "--db", study,
                         code=None))
    assert line.startswith("Error: no labels 'Foo', 'Bar' under the 'auto' rule; for 'Foo', "
                           "did you mean 'FooFighters'")
    line = one_error(run("experiment", "create", "one", "--labels", "Classical,TaylorSwfit",
                         "--db", study, code=None))
    assert "no label 'TaylorSwfit' under the 'auto' rule; did you mean 'TaylorSwift'" in line
    # Case and accents are not typos: the label is stored as the library spells it.
    run("experiment", "create", "cased", "--labels", "classical,taylorswift", "--db", study)
    shown = json.loads(run("experiment", "show", "cased", "--db", study).stdout)
    assert shown["labels"] == ["Classical", "TaylorSwift"]
    run("experiment", "delete", "cased", "--db", study)


def test_labels_all_takes_every_label_with_enough_songs(run, study):
    made = run("experiment", "create", "big", "--labels", "all", "--min-songs", "200",
               "--db", study)
    shown = json.loads(run("experiment", "show", "big", "--db", study).stdout)
    assert shown["labels"] == ["BoardsOfCanada", "Classical", "TheFlashbulb", "Xmas"]
    # What was left out is named with its count; the suggested folds fit every label.
    left = " ".join(line for line in made.stderr.splitlines() if line.startswith("Left out"))
    assert left.startswith("Left out, with fewer than --min-songs 200 songs: "), made.stderr
    assert "TaylorSwift (" in left
    assert "--cv 5" in made.stderr
    line = one_error(run("experiment", "create", "none", "--labels", "all", "--min-songs",
                         "1000", "--db", study, code=None))
    assert "--labels all: 0 labels under the 'auto' rule have at least 1,000 songs" in line
    run("experiment", "delete", "big", "--db", study)


def test_predict_proba_of_a_label_the_experiment_lacks_is_an_error(run, study):
    run("experiment", "create", "pp", "--labels", "Classical,Xmas", "--model", "logreg",
        "--db", study)
    run("evaluate", "--experiment", "pp", "--no-prune", "--db", study)
    query = ("SELECT round(predict_proba('pp', song_id, 'Classical') + "
             "predict_proba('pp', song_id, 'Xmas'), 6) AS total FROM songs "
             "WHERE imported_label IN ('Classical', 'Xmas') LIMIT 3")
    assert json.loads(run("sql", query, "--json", "--db", study).stdout) == [{"total": 1.0}] * 3
    line = one_error(run("sql", "SELECT predict_proba('pp', 1, 'Nope')", "--db", study,
                         code=None))
    assert "'Nope' is not a label of experiment 'pp' (its labels: Classical, Xmas)" in line
    # A song without features stays NULL: no answer, not an error.
    assert json.loads(run("sql", "SELECT predict_proba('pp', -5, 'Xmas') AS p", "--json",
                          "--db", study).stdout) == [{"p": None}]
    run("experiment", "delete", "pp", "--db", study)


# --- §5: output for pipes and scripts ----------------------------------------------------------

def test_listings_print_full_values_for_pipes_and_give_json_and_csv(run, study):
    run("experiment", "create", "out", "--labels", "Zero7,ImogenHeap", "--model", "logreg",
        "--db", study)
    ev = json.loads(run("evaluate", "--experiment", "out", "--no-prune", "--json",
                        "--db", study).stdout)
    piped = lines(run("evaluations", "--experiment", "out", "--db", study).stdout)
    header, row = piped[0].split("\t"), piped[1].split("\t")
    assert header[:3] == ["evaluation_id", "experiment", "feature_set"]
    assert float(row[header.index("accuracy")]) == ev["accuracy"]  # every digit, no "…"
    assert float(row[header.index("wall_s")]) == pytest.approx(ev["wall_s"], abs=1e-9)
    as_csv = list(csv.DictReader(io.StringIO(run("evaluations", "--experiment", "out", "--csv",
                                                 "--db", study).stdout)))
    assert float(as_csv[0]["macro_f1"]) == ev["macro_f1"]
    assert as_csv[0]["model_path"] == "music.duckdb.models/out-" + str(ev["evaluation_id"]) \
        + ".skops" == ev["model_path"]
    assert json.loads(run("evaluations", "--experiment", "out", "--json", "--db", study
                          ).stdout)[0]["accuracy"] == ev["accuracy"]

    listed = list(csv.DictReader(io.StringIO(run("experiment", "list", "--csv", "--db", study
                                                 ).stdout)))
    out = next(r for r in listed if r["name"] == "out")
    assert json.loads(out["labels"]) == ["Zero7", "ImogenHeap"]
    assert out["preset"] == "False"
    piped = lines(run("experiment", "list", "--db", study).stdout)
    assert piped[0].split("\t")[:3] == ["name", "preset", "labels"]
    shown = list(csv.DictReader(io.StringIO(run("experiment", "show", "out", "--csv",
                                                "--db", study).stdout)))
    assert [r["model"] for r in shown] == ["logreg"]
    assert json.loads(run("experiment", "show", "out", "--json", "--db", study
                          ).stdout)["labels"] == ["Zero7", "ImogenHeap"]

    predicted = list(csv.DictReader(io.StringIO(run("predict", "1", "2", "--experiment", "out",
                                                    "--top", "2", "--csv", "--db", study
                                                    ).stdout)))
    assert [(r["query"], r["rank"]) for r in predicted] == [("1", "1"), ("1", "2"),
                                                            ("2", "1"), ("2", "2")]
    assert sum(float(r["probability"]) for r in predicted[:2]) == pytest.approx(1.0)
    piped = lines(run("predict", "1", "--experiment", "out", "--db", study).stdout)
    assert piped[0] == "query\tsong_id\trank\tlabel\tprobability"
    both = run("evaluations", "--json", "--csv", "--db", study, code=2)
    assert "use one of them, not both" in both.output
    run("experiment", "delete", "out", "--db", study)


def test_models_folder_name_is_the_databases(tmp_path):
    assert models.models_dir(tmp_path / "music.duckdb") == tmp_path / "music.duckdb.models"


def test_the_commands_choices_are_the_librarys():
    import typing

    from musicdb.cli import experiments as cli
    from musicdb.cli import maps as cli_maps
    from musicdb.maps import runs
    from musicdb.ml import experiments as ex

    assert typing.get_args(cli.Unit) == ex.UNITS
    assert typing.get_args(cli.Split) == ex.SPLITS
    assert typing.get_args(cli.Model) == ex.MODELS
    hints = typing.get_type_hints(cli_maps.map_, include_extras=True)
    for option, allowed in (("method", runs.METHODS), ("unit", runs.UNITS),
                            ("color_by", runs.COLOR_BY)):
        assert typing.get_args(typing.get_args(hints[option])[0]) == allowed


def test_the_suggested_evaluate_runs_on_small_labels(run, games):
    made = run("experiment", "create", "small", "--labels", "all", "--min-songs", "3",
               "--model", "logreg", "--db", games)
    suggested = made.stderr.split("Try: ", 1)[1].split()
    assert suggested[:4] == ["musicdb", "evaluate", "--experiment", "small"]
    assert suggested[4:] == ["--cv", "3"]  # the smallest label has 3 songs
    run(*suggested[1:], "--db", games)  # as suggested, it runs
