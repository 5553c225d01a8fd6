"""musicdb/cli/output.py through a real command (`info`): a table on a terminal, full values on
a pipe, --json, --csv, and the two together refused."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, SEED_CSV

# Longer than any terminal is wide: a pipe must get it whole, a table may not.
LONG_LABEL = "The Long Label " + "x" * 150
ODD_LABEL = "tab\there, back\\slash"


@pytest.fixture(scope="module")
def small_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three of the study's songs under a very long label, two under a label with a tab."""
    from typer.testing import CliRunner

    from musicdb.cli import app

    tmp = tmp_path_factory.mktemp("output")
    with SEED_CSV.open(newline="") as f:
        rows = list(csv.reader(f))
    for i, row in enumerate(rows[1:6], start=1):
        row[0] = LONG_LABEL if i <= 3 else ODD_LABEL
    table = tmp / "five.csv"
    with table.open("w", newline="") as f:
        csv.writer(f).writerows(rows[:6])
    db = tmp / "music.duckdb"
    result = CliRunner().invoke(app, ["import", str(table), "--feature-set", "five", "--db",
                                      str(db)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return db


def test_a_pipe_gets_full_values_one_row_a_line(run, small_db):
    lines = run("info", "--db", small_db).stdout.splitlines()
    assert "feature set\tversion\tkind\tfeatures\tsongs\tsnippets" in lines
    assert "five\t1\timported\t55\t5\t0" in lines
    assert f"{LONG_LABEL}\t3" in lines  # whole: no "…", no wrapping
    assert "tab\\there, back\\\\slash\t2" in lines  # a tab in a value cannot split its row
    assert not any("…" in line or "━" in line for line in lines)


def test_a_terminal_gets_a_table(run, small_db, monkeypatch):
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich's switch: stdout counts as a terminal
    monkeypatch.setenv("COLUMNS", "100")
    text = run("info", "--db", small_db).stdout
    assert "┃ feature set" in text
    assert "│ five " in text
    assert LONG_LABEL not in text  # the table fits the window
    assert "The Long Label" in text


def test_a_real_terminal_gets_a_table(small_db):
    """The same through a pseudo-terminal: no environment switch, the real isatty()."""
    leader, follower = pty.openpty()
    env = os.environ | {"COLUMNS": "100", "TERM": "xterm"}
    for name in ("TTY_COMPATIBLE", "FORCE_COLOR", "NO_COLOR"):
        env.pop(name, None)
    proc = subprocess.Popen([sys.executable, "-m", "musicdb", "info", "--db", str(small_db)],
                            stdout=follower, stderr=subprocess.PIPE, cwd=REPO, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the pty closed: the command has finished writing
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    proc.stderr.close()
    text = re.sub(r"\x1b\[[0-9;]*m", "", b"".join(chunks).decode())  # colours off
    assert "┃ feature set" in text
    assert "│ five " in text


def test_csv_is_the_feature_set_table(run, small_db):
    rows = list(csv.reader(io.StringIO(run("info", "--db", small_db, "--csv").stdout)))
    assert rows == [["feature_set", "version", "kind", "features", "songs", "snippets"],
                    ["five", "1", "imported", "55", "5", "0"]]


def test_json_is_one_object_with_every_number(run, small_db):
    data = json.loads(run("info", "--db", small_db, "--json").stdout)
    assert data["database"] == str(small_db)
    assert data["songs"] == {"ok": 0, "error": 0, "missing": 0, "imported": 5}
    assert data["snippets"] == 0
    assert data["feature_sets"] == [{"feature_set": "five", "version": 1, "kind": "imported",
                                     "features": 55, "songs": 5, "snippets": 0}]
    assert data["top_labels"] == [{"label": LONG_LABEL, "songs": 3},
                                  {"label": ODD_LABEL, "songs": 2}]
    assert data["similarity_stale"] is False


def test_json_and_csv_together_is_a_usage_error(small_db):
    proc = subprocess.run([sys.executable, "-m", "musicdb", "info", "--db", str(small_db),
                           "--json", "--csv"], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error:")
    assert "--json / --csv" in lines[0]


def test_plural():
    from musicdb.terminal import plural

    assert plural(1, "song") == "1 song"
    assert plural(0, "label") == "0 labels"
    assert plural(2333, "song") == "2,333 songs"
    assert plural(2, "analysis", "analyses") == "2 analyses"
