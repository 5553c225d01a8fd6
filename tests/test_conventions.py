"""What every command shares, checked on every command the app has (a new one is walked too):
exit codes (usage errors 2, other failures 1) with one line on stderr, help text without
Typer's artefacts, --version."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import typing
from pathlib import Path

import pytest
import typer

import musicdb
from musicdb.cli import app, main
from tests.conftest import REPO, SEED_CSV

# The arguments and options each command cannot run without (placeholders: the database is
# missing, so nothing is looked up). A command missing here fails test_every_command_is_walked.
REQUIRED = {
    "ingest": ["{tmp}"],
    "import": [str(SEED_CSV), "--feature-set", "x"],
    "export": ["{tmp}/out"],
    "info": [],
    "demo": [],
    "similar": ["Someone"],
    "path": ["A", "B"],
    "heatmap": [],
    "map": [],
    "evaluate": ["--experiment", "x"],
    "evaluations": [],
    "predict": ["1", "--experiment", "x"],
    "sql": ["SELECT 1"],
    "experiment create": ["x", "--labels", "a,b"],
    "experiment list": [],
    "experiment show": ["x"],
    "experiment delete": ["x"],
    "serve": [],
    "user add": ["someone"],
    "user list": [],
    "user remove": ["someone"],
}
# Only these may create a database that is not there.
CREATE = {"ingest", "import", "demo"}
# These work on the users file (--users), not on a database.
NO_DATABASE = {"user add", "user list", "user remove"}


def leaf_commands() -> dict[str, typer.core.TyperCommand]:
    found = {}

    def walk(command, path: list[str]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])
        if not hasattr(command, "commands"):
            found[" ".join(path)] = command

    walk(typer.main.get_command(app), [])
    return found


def every_help_path() -> list[str]:
    groups = {" ".join(name.split()[:-1]) for name in leaf_commands()}
    return sorted(set(leaf_commands()) | groups)


def musicdb_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`musicdb ARGS` through the real entry point (musicdb.cli:main, which formats usage
    errors), in this process: exit code, stdout, stderr."""
    monkeypatch.setattr(sys, "argv", ["musicdb", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    code = exited.value.code
    captured = capsys.readouterr()
    return (0 if code is None else code), captured.out, captured.err


def assert_one_error_line(err: str, *expected: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: "), err
    assert "Traceback" not in err
    for text in expected:
        assert text in lines[0], err


def args_for(name: str, tmp: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)) for a in REQUIRED[name]]


def test_every_command_is_walked():
    assert set(leaf_commands()) == set(REQUIRED), "list a new command's required arguments"


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_an_unknown_option_is_a_usage_error(name, monkeypatch, capsys, tmp_path):
    code, out, err = musicdb_main(monkeypatch, capsys, *name.split(), *args_for(name, tmp_path),
                                  "--no-such-option")
    assert code == 2
    assert out == ""
    assert_one_error_line(err, "--no-such-option", f"musicdb {name} --help")


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_a_bad_value_is_a_usage_error(name, monkeypatch, capsys, tmp_path):
    command = leaf_commands()[name]
    options = {p.name: p for p in command.params if isinstance(p, typer.core.TyperOption)}
    if "db" in options:  # a folder where the database file goes
        bad = ["--db", str(tmp_path)]
    elif "users" in options:  # a folder where the users file goes
        bad = ["--users", str(tmp_path)]
    else:
        bad = ["--workers", "zero"]
        assert "workers" in options, f"give {name} a bad value here"
    code, out, err = musicdb_main(monkeypatch, capsys, *name.split(), *args_for(name, tmp_path),
                                  *bad)
    assert code == 2
    assert out == ""
    assert_one_error_line(err, bad[0])


def options_where(test) -> list[tuple[str, str]]:
    """(command, --option) for every option of every command that `test(option)` picks."""
    return sorted((name, param.opts[-1] if param.opts[-1].startswith("--") else param.opts[0])
                  for name, command in leaf_commands().items() for param in command.params
                  if isinstance(param, typer.core.TyperOption) and test(param))


def is_number(param) -> bool:
    return param.type_descriptor.annotation in (int, float) and not param.is_flag


def is_choice(param) -> bool:
    return param.type_descriptor.is_choice


# Options whose values are a fixed list: they must be choices, so a wrong value is a usage
# error (exit 2, before any work) like every other bad value, not a failure (exit 1).
FIXED_CHOICES = [("export", "--format"), ("map", "--method"), ("map", "--unit"),
                 ("map", "--color-by"), ("experiment create", "--unit"),
                 ("experiment create", "--split"), ("experiment create", "--model"),
                 ("evaluate", "--model")]


@pytest.mark.parametrize(("name", "option"), options_where(is_number))
def test_a_number_that_is_not_one_is_a_usage_error(name, option, monkeypatch, capsys,
                                                    tmp_path):
    code, out, err = musicdb_main(monkeypatch, capsys, *name.split(), *args_for(name, tmp_path),
                                  option, "many")
    assert code == 2
    assert out == ""
    assert_one_error_line(err, option)


@pytest.mark.parametrize(("name", "option"),
                         sorted(set(options_where(is_choice)) | set(FIXED_CHOICES)))
def test_a_value_not_among_the_choices_is_a_usage_error(name, option, monkeypatch, capsys,
                                                        tmp_path):
    code, out, err = musicdb_main(monkeypatch, capsys, *name.split(), *args_for(name, tmp_path),
                                  option, "bogus", "--db", str(tmp_path / "typo.duckdb"))
    assert code == 2, err
    assert out == ""
    assert_one_error_line(err, option)


def test_shared_choices_are_the_librarys():
    from musicdb.choices import LABEL_RULES
    from musicdb.cli.app import DISTANCE_METHODS, DistanceMethod, LabelFrom
    from musicdb.similarity import heatmap, similar

    assert DISTANCE_METHODS == similar.METHODS == tuple(heatmap.METHODS)
    assert typing.get_args(typing.get_args(LabelFrom)[0]) == LABEL_RULES
    assert typing.get_args(typing.get_args(DistanceMethod)[0]) == DISTANCE_METHODS


@pytest.mark.parametrize("name", sorted(set(REQUIRED) - CREATE - NO_DATABASE))
def test_a_missing_database_is_one_line_and_exit_1(name, monkeypatch, capsys, tmp_path):
    db = tmp_path / "typo.duckdb"
    code, _, err = musicdb_main(monkeypatch, capsys, *name.split(), *args_for(name, tmp_path),
                                "--db", str(db))
    assert code == 1, err
    assert_one_error_line(err, "typo.duckdb")
    assert not db.exists(), f"{name} created the database it was pointed at by mistake"


@pytest.mark.parametrize("name", every_help_path())
def test_help_has_no_typer_artefacts(name, monkeypatch, capsys):
    code, out, err = musicdb_main(monkeypatch, capsys, *name.split(), "--help")
    assert code == 0, err
    assert "Usage: musicdb" in out
    for line in out.splitlines():
        assert not re.search(r" \.(\s|$)", line), f"a default dropped from the help: {line!r}"
        assert "<bool>" not in line, line
        assert "list[" not in line, line
        assert "...}..." not in line, line


def test_version(monkeypatch, capsys):
    code, out, _ = musicdb_main(monkeypatch, capsys, "--version")
    assert code == 0
    assert out.startswith(f"musicdb {musicdb.__version__} (duckdb 1.5.")
    with (REPO / "pyproject.toml").open("rb") as f:
        assert tomllib.load(f)["project"]["version"] == musicdb.__version__


def test_version_as_installed():
    proc = subprocess.run([str(Path(sys.executable).with_name("musicdb")), "--version"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"musicdb {musicdb.__version__} ")
