"""Model files belong to their database: DB.models/ beside it, never shared (issue 16, §2).

Before, every database of a folder wrote models/NAME-ID.skops: evaluating `xmas` in a second
database replaced the first one's model, whose `predict` then refused the file. Databases with
rows in that old folder keep working while their file is theirs (SHA-256), are adopted into
their own folder on their next write, and say in one line when another database overwrote it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from musicdb.ml import models
from tests.conftest import SEED_CSV

XM = ("--model", "logreg", "--no-prune")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two databases of the study in one folder, each with an experiment named `xm` (other
    labels, so their models differ), evaluated once."""
    from typer.testing import CliRunner

    from musicdb.cli import app

    where = tmp_path_factory.mktemp("two-dbs")
    runner = CliRunner()
    for name, labels in (("a", "Classical,Xmas"), ("b", "TaylorSwift,AvrilLavigne")):
        db = where / f"{name}.duckdb"
        for args in (["import", SEED_CSV, "--feature-set", "study55"],
                     ["experiment", "create", "xm", "--labels", labels],
                     ["evaluate", "--experiment", "xm", *XM]):
            result = runner.invoke(app, [str(a) for a in [*args, "--db", db]],
                                   catch_exceptions=False)
            assert result.exit_code == 0, result.output
    return where


@pytest.fixture
def dbs(folder: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the folder, so a test may break its files."""
    shutil.copytree(folder, tmp_path / "f")
    return tmp_path / "f" / "a.duckdb", tmp_path / "f" / "b.duckdb"


def model_rows(db: Path) -> list[tuple[int, str, str]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT evaluation_id, path, sha256 FROM models "
                           "ORDER BY evaluation_id").fetchall()


def top_label(run, db: Path, song: str = "1") -> str:
    answer = json.loads(run("predict", song, "--experiment", "xm", "--json", "--db", db).stdout)
    return answer[0]["labels"][0]["label"]


def to_legacy(db: Path) -> Path:
    """What a database written before issue 16 looks like: its model in the shared models/."""
    (eid, path, _), = model_rows(db)
    legacy = db.parent / "models" / Path(path).name
    legacy.parent.mkdir(exist_ok=True)
    shutil.move(db.parent / path, legacy)
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE models SET path = ? WHERE evaluation_id = ?",
                    [f"models/{legacy.name}", eid])
    return legacy


def test_two_databases_in_one_folder_keep_their_own_models(run, dbs):
    a, b = dbs
    (_, path_a, sha_a), = model_rows(a)
    (_, path_b, sha_b), = model_rows(b)
    assert path_a == "a.duckdb.models/xm-1.skops"  # same experiment name, same evaluation id
    assert path_b == "b.duckdb.models/xm-1.skops"
    assert models.sha256(a.parent / path_a) == sha_a != sha_b == models.sha256(b.parent / path_b)
    assert not (a.parent / "models").exists()
    # Both predict, each with its own labels.
    assert top_label(run, a) in {"Classical", "Xmas"}
    assert top_label(run, b) in {"TaylorSwift", "AvrilLavigne"}
    # Evaluating again in one leaves the other's file alone.
    run("evaluate", "--experiment", "xm", *XM, "--seed", "1", "--db", b)
    assert models.sha256(a.parent / path_a) == sha_a
    assert top_label(run, a) in {"Classical", "Xmas"}
    assert [p for _, p, _ in model_rows(b)] == ["b.duckdb.models/xm-2.skops"]
    assert not (b.parent / path_b).exists()  # b's older model file is gone, a's is not


def test_an_old_shared_model_file_is_used_then_adopted_on_the_next_write(run, dbs):
    a, _ = dbs
    legacy = to_legacy(a)
    before = models.sha256(legacy)
    assert top_label(run, a) in {"Classical", "Xmas"}  # read from models/, hash checked
    run("evaluate", "--experiment", "xm", *XM, "--keep", "--db", a)
    rows = model_rows(a)
    assert [p for _, p, _ in rows] == ["a.duckdb.models/xm-1.skops",
                                       "a.duckdb.models/xm-2.skops"]
    assert models.sha256(a.parent / rows[0][1]) == before == rows[0][2]
    # The old file stays: a copy of this database (same rows, same hash) may still use it.
    assert legacy.is_file()


def test_a_file_another_database_overwrote_says_so_in_one_line(run, dbs):
    a, b = dbs
    to_legacy(a)
    to_legacy(b)  # the old bug: b's xm-1 replaced a's models/xm-1.skops
    assert top_label(run, b) in {"TaylorSwift", "AvrilLavigne"}
    refused = run("predict", "1", "--experiment", "xm", "--db", a, code=1)
    lines = [line for line in refused.output.splitlines() if line.strip()]
    assert len(lines) == 1, refused.output
    assert lines[0].startswith("Error: model file ")
    assert "was overwritten by another database in the same folder" in " ".join(
        refused.output.split())
    # a's next evaluation writes into its own folder and never deletes b's file.
    run("evaluate", "--experiment", "xm", *XM, "--db", a)
    assert [p for _, p, _ in model_rows(a)] == ["a.duckdb.models/xm-2.skops"]
    assert top_label(run, a) in {"Classical", "Xmas"}
    assert top_label(run, b) in {"TaylorSwift", "AvrilLavigne"}
    run("experiment", "delete", "xm", "--db", a)
    assert (b.parent / "models" / "xm-1.skops").is_file()
    assert top_label(run, b) in {"TaylorSwift", "AvrilLavigne"}
