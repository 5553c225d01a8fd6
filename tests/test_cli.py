"""The `musicdb` command as a user meets it: help, info, the env var, the demo."""

from __future__ import annotations

import inspect
import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from musicdb.audio.synth import demo_library
from musicdb.cli import app
from tests.conftest import REPO, SEED_CSV

COMMANDS = {"ingest", "import", "export", "info", "demo", "similar", "heatmap", "map",
            "experiment", "evaluate", "evaluations", "predict", "sql", "path", "serve", "user"}


def flat(text: str) -> str:
    """Output with rich's line wrapping and table borders undone."""
    return " ".join(text.replace("│", " ").split())


def commands() -> dict:
    return typer.main.get_command(app).commands


def test_the_app_has_the_documented_commands():
    assert set(commands()) == COMMANDS


def test_main_help_lists_every_command(run):
    result = run("--help")
    text = flat(result.output)
    assert "a music feature store with a SQL face" in text
    for name in COMMANDS:
        assert f" {name} " in text, name


def test_no_arguments_shows_help():
    result = CliRunner().invoke(app, [])
    assert "Usage" in result.output
    assert all(f" {name} " in flat(result.output) for name in COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(run, name):
    command = commands()[name]
    doc = inspect.getdoc(command.callback)
    assert doc, f"{name} has no docstring"
    summary = doc.splitlines()[0]
    assert len(summary) > 20
    result = run(name, "--help")
    text = flat(result.output)
    assert "Usage:" in text
    assert name in text.split("Usage:")[1][:60]
    assert summary in text
    # ...and the main help shows the same one-line description.
    assert summary.split(":")[0][:30] in flat(run("--help").output)
    # Every option says what it is for.
    for param in command.params:
        if isinstance(param, typer.core.TyperOption) and param.name != "help":
            assert param.help, f"{name} --{param.name} has no help"


def test_info_after_an_import(tmp_path, run):
    db = tmp_path / "music.duckdb"
    run("import", SEED_CSV, "--feature-set", "study55", "--db", db)
    text = flat(run("info", "--db", db).output)
    migrations = len(list((REPO / "migrations").glob("*.sql")))
    assert f"schema version {migrations}" in text
    assert "songs: 0 ok, 0 error, 0 missing; 2,333 imported without audio" in text
    assert "snippets: 0" in text
    assert "study55 1 imported 55 2333 0" in text  # a pipe: full values, no separators
    # The top labels, largest first, with the study's counts.
    assert "TheFlashbulb 560 Classical 467 Xmas 323 BoardsOfCanada 214" in text


def test_musicdb_db_env_var(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "elsewhere" / "env.duckdb"
    db.parent.mkdir()
    runner = CliRunner()
    env = {"MUSICDB_DB": str(db)}

    missing = runner.invoke(app, ["info"], env=env, catch_exceptions=False)
    assert missing.exit_code == 1
    assert "env.duckdb" in flat(missing.output)

    imported = runner.invoke(app, ["import", str(SEED_CSV), "--feature-set", "study55"],
                             env=env, catch_exceptions=False)
    assert imported.exit_code == 0, imported.output
    assert db.exists()
    assert not (tmp_path / "music.duckdb").exists()  # not the default file

    info = runner.invoke(app, ["info"], env=env, catch_exceptions=False)
    assert info.exit_code == 0, info.output
    assert "2,333 imported without audio" in flat(info.output)

    # --db still wins over the variable.
    other = runner.invoke(app, ["info", "--db", str(tmp_path / "nope.duckdb")], env=env,
                          catch_exceptions=False)
    assert other.exit_code == 1
    assert "nope.duckdb" in flat(other.output)


def test_export_on_a_missing_database(tmp_path, run):
    db = tmp_path / "missing.duckdb"
    result = run("export", tmp_path / "out", "--db", db, code=1)
    assert "Error:" in result.output
    assert "Traceback" not in result.output
    assert not db.exists()
    assert not (tmp_path / "out").exists()


def test_import_of_a_missing_file_is_a_usage_error(tmp_path, run):
    db = tmp_path / "music.duckdb"
    # Relative (the test runs in an empty folder): a long absolute path would be wrapped
    # inside the usage box, splitting the name this checks.
    result = run("import", "nope.csv", "--feature-set", "x", "--db", db, code=2)
    assert "nope.csv" in flat(result.output)
    assert not db.exists()


@pytest.mark.slow
def test_demo_and_its_queries(tmp_path, run, shell):
    folder = tmp_path / "demo"
    # The demo writes only the songs that are missing, so the same 16 songs are written here at
    # 20 s instead of its 40 s: half the analysis, and each still has a snippet (a last partial
    # one is kept from 15 s). The demo must keep them as they are.
    made = demo_library(folder / "library", seconds=20.0)
    written = {p: p.stat().st_mtime_ns for p in made}
    result = run("demo", "--folder", folder, "--workers", "1")
    assert {p: p.stat().st_mtime_ns for p in made} == written
    db = folder / "demo.duckdb"
    assert db.is_file()
    songs = sorted(p.relative_to(folder / "library") for p in (folder / "library").rglob("*.flac"))
    assert len(songs) == 16
    assert len({p.parts[0] for p in songs}) == 4

    text = flat(result.output)
    assert "16 new" in text
    assert "0 failed" in text
    assert "Try next:" in result.output

    labels = shell(db, "SELECT label, count(*) FROM song_labels WHERE rule = 'auto' "
                       "GROUP BY 1 ORDER BY 1")
    assert len(labels) == 4
    assert all(n == "4" for _, n in labels)
    assert shell(db, "SELECT count(*), count(*) FILTER (status = 'ok') FROM songs") == [
        ["16", "16"]]
    folders = {p.parts[0] for p in songs}

    # Each duckdb query the demo suggests runs in the real shell and returns what it promises.
    lines = [shlex.split(line, comments=True) for line in result.output.splitlines()
             if line.startswith("  ")]
    queries = [argv for argv in lines if argv and Path(argv[0]).name == "duckdb"]
    assert len(queries) >= 2
    grouped = 0
    for argv in queries:
        assert argv[1] == "-readonly", argv  # never holds the write lock over the file
        assert Path(argv[2]) == db, argv
        assert argv[3] == "-c", argv
        sql = argv[4]
        rows = shell(db, sql)
        assert rows, sql
        assert sql.startswith("SELECT label,"), sql
        assert {row[0].strip('"') for row in rows} == folders, sql  # all 4 labels, no others
        if "GROUP BY label" in sql:
            grouped += 1
            assert len(rows) == 4, sql  # one row per label
            assert all(row[1] == "4" for row in rows)  # songs per label
            assert all(float(row[2]) > 0 for row in rows)  # a tempo was found
    assert grouped >= 1

    # The suggested `musicdb info` works too (with --db or MUSICDB_DB, as printed).
    argv = next(a for a in lines if "info" in a and any(Path(t).name == "musicdb" for t in a))
    at = next(i for i, t in enumerate(argv) if Path(t).name == "musicdb")
    env = dict(t.split("=", 1) for t in argv[:at])
    info = CliRunner().invoke(app, argv[at + 1 :], env=env, catch_exceptions=False)
    assert info.exit_code == 0, info.output
    assert "songs: 16 ok, 0 error, 0 missing" in flat(info.output)
