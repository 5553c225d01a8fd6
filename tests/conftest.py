"""Shared fixtures: a temporary database, the real CLI, generated audio, the duckdb shell."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import musicdb.ingest.run
from musicdb.cli import app

REPO = Path(__file__).resolve().parent.parent
# The study's tables (copies of shared/data, so a clean clone tests the same data).
SEED_CSV = REPO / "tests" / "data" / "seed_features_5band.csv"
SEED_CSV_247 = REPO / "tests" / "data" / "seed_features_5and25band.csv.gz"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "music.duckdb"


@pytest.fixture
def run():
    """Invoke the real CLI in-process; asserts the exit code unless told otherwise."""
    runner = CliRunner()

    def invoke(*args: str, code: int | None = 0):
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        if code is not None:
            assert result.exit_code == code, result.output
        return result

    return invoke


def duckdb_shell() -> str:
    """The duckdb command-line shell from the duckdb-cli package, next to this Python."""
    beside = Path(sys.executable).with_name("duckdb")
    found = str(beside) if beside.exists() else shutil.which("duckdb")
    assert found, "the duckdb shell is missing: pip install 'duckdb-cli>=1.5.6,<1.6'"
    return found


@pytest.fixture
def shell():
    """Run SQL in the real duckdb shell (read-only); returns rows as lists of strings (CSV)."""

    def query(db: Path, sql: str) -> list[list[str]]:
        proc = subprocess.run(
            [duckdb_shell(), "-readonly", "-csv", "-noheader", str(db), "-c", sql],
            capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert "Error" not in proc.stderr, proc.stderr
        return [row for row in csv.reader(proc.stdout.splitlines()) if row]

    return query


@pytest.fixture
def calls(monkeypatch) -> list[str]:
    """Names of the files analysed (in-process, i.e. with --workers 1)."""
    seen: list[str] = []
    real = musicdb.ingest.run.analyse_file

    def counting(path: str, *args, **kwargs):
        seen.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(musicdb.ingest.run, "analyse_file", counting)
    monkeypatch.setattr(musicdb.ingest.run, "RUN_IN_PROCESS", True)  # counted here, not in workers
    return seen


def import_study(folder: Path) -> Path:
    """The study's 2,333 songs (13 labels) imported through the real CLI as `study55`."""
    db = folder / "music.duckdb"
    result = CliRunner().invoke(app, ["import", str(SEED_CSV), "--feature-set", "study55",
                                      "--db", str(db)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return db
