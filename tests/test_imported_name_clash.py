"""A database an older musicdb let import a set named `seed55` (issue 16, §2): every ingest
failed with "feature set 'seed55' exists already as imported". Ingest now skips that set with
one warning line and extracts the others; `predict FILE` says it is analysing the file."""

from __future__ import annotations

import io
from pathlib import Path

import duckdb
import pytest
from rich.console import Console

import musicdb.cli.experiments
from musicdb.audio.synth import demo_library
from tests.conftest import SEED_CSV
from tests.executors import in_process


@pytest.fixture
def clashing(run, tmp_path: Path) -> Path:
    """The study imported as 'seed55', the way an older musicdb wrote it."""
    db = tmp_path / "old.duckdb"
    run("import", SEED_CSV, "--feature-set", "study55", "--db", db)
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE feature_sets SET name = 'seed55' WHERE name = 'study55'")
    return db


def test_ingest_skips_an_imported_set_of_an_extracted_name(run, clashing, tmp_path,
                                                           monkeypatch):
    in_process(monkeypatch)
    demo_library(tmp_path / "lib", songs_per_artist=2, seconds=8.0)
    result = run("ingest", tmp_path / "lib", "--snippet-seconds", "0", "--db", clashing)
    warnings = [line for line in result.output.splitlines() if "seed55" in line]
    assert warnings == ["Warning: skipping feature set 'seed55': this database holds an "
                        "imported set of that name (from `musicdb import`), which extracted "
                        "values must not mix with"]
    with duckdb.connect(str(clashing), read_only=True) as con:
        sets = dict(con.execute(
            "SELECT fs.name || '/' || fs.kind, count(*) FROM features f "
            "JOIN feature_sets fs USING (feature_set_id) GROUP BY ALL").fetchall())
    assert sets == {"seed55/imported": 2333, "default/extracted": 8,
                    "tonal/extracted": 8}

    # Only the clashing set asked for: nothing to do, one line.
    only = run("ingest", tmp_path / "lib", "--feature-set", "seed55", "--db", clashing, code=1)
    assert [line for line in only.output.splitlines() if line.startswith("Error:")] == [
        "Error: nothing to extract: 'seed55' is an imported feature set in this database; "
        "pass --feature-set another set"]

    # predict FILE analyses the file, and says so while it does.
    run("experiment", "create", "demo", "--labels", "all", "--min-songs", "2", "--feature-set",
        "default", "--model", "logreg", "--test-fraction", "0.3", "--db", clashing)
    run("evaluate", "--experiment", "demo", "--no-prune", "--db", clashing)
    screen = io.StringIO()
    monkeypatch.setattr(musicdb.cli.experiments, "err",
                        Console(file=screen, force_terminal=True, color_system=None, width=200))
    song = sorted((tmp_path / "lib").rglob("*.flac"))[0]
    run("predict", song, "--experiment", "demo", "--db", clashing)
    assert f"analysing {song} ..." in screen.getvalue()
