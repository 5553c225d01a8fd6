"""The README's SQL runs in the real duckdb shell on a file musicdb wrote, with expected numbers;
every `musicdb …` and `duckdb …` line of its shell examples runs as written, on the database the
README says it is for."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from musicdb.audio.synth import FORMATS, demo_library, tone, write_audio
from tests.conftest import REPO, SEED_CSV

STUDY_COUNTS = {
    "AvrilLavigne": 91, "BoardsOfCanada": 214, "Classical": 467, "FooFighters": 99,
    "ImogenHeap": 61, "MichaelJackson": 60, "PinkFloyd": 107, "REM": 111, "TaylorSwift": 95,
    "TheFlashbulb": 560, "TommyEmmanuel": 114, "Xmas": 323, "Zero7": 31,
}


def readme_queries() -> list[str]:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", text, re.S)
    return [s.strip() for block in blocks for s in block.split(";") if s.strip()]


@pytest.fixture(scope="module")
def readme_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from typer.testing import CliRunner

    from musicdb.cli import app

    tmp = tmp_path_factory.mktemp("readme")
    demo_library(tmp / "lib", songs_per_artist=2, seconds=35.0)
    db = tmp / "music.duckdb"
    runner = CliRunner()
    for args in (["ingest", str(tmp / "lib"), "--db", str(db), "--workers", "1"],
                 ["import", str(SEED_CSV), "--feature-set", "study55", "--db", str(db)]):
        result = runner.invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return db


def _kind(text: str) -> str:
    """features_seed55_v2 -> features_<set>_v<N>: generated views are shown for one set each."""
    text = re.sub(r"_(seed55|study55|default|tonal)(?![a-z0-9])", "_<set>", text)
    return re.sub(r"_<set>_v\d+(?!\d)", "_<set>_v<N>", text)


def test_readme_has_sql_for_every_view(shell, readme_db: Path) -> None:
    views = {r[0] for r in shell(readme_db, "SELECT view_name FROM duckdb_views() "
                                            "WHERE NOT internal")}
    assert {"features_seed55_v1", "features_default", "snippets_study55_v1"} <= views
    documented = _kind(" ".join(readme_queries()))
    for view in views:
        assert re.search(rf"(?<![\w<]){re.escape(_kind(view))}(?![\w<])", documented), \
            f"no README example for {view}"


def test_every_readme_query_runs_in_the_shell(shell, readme_db: Path) -> None:
    queries = readme_queries()
    assert len(queries) >= 8
    for sql in queries:
        shell(readme_db, sql)  # asserts exit code 0 and no error


def test_readme_queries_give_the_expected_numbers(shell, readme_db: Path) -> None:
    by_text = {q.split("FROM")[1].split()[0]: q for q in readme_queries() if "FROM" in q}
    rules = {r[0]: (int(r[1]), int(r[2])) for r in shell(readme_db, by_text["song_labels"])}
    assert rules["imported"] == (13, 2333)
    assert rules["folder"] == (4, 8)
    assert rules["artist"] == (4, 8)
    assert rules["auto"] == (17, 2341)

    labels = {r[0]: int(r[1]) for r in shell(readme_db, by_text["features_study55"])}
    assert labels == STUDY_COUNTS

    snippets = shell(readme_db, by_text["snippets_seed55"])
    assert len(snippets) == 8  # 8 songs of 35 s: one 30 s snippet each (the 5 s tail dropped)
    assert {(r[3], r[4]) for r in snippets} == {("0.0", "30.0")}

    sets = {r[0]: r[1:] for r in shell(readme_db, by_text["feature_set_summary"])}
    assert sets["seed55"] == ["1", "extracted", "55", "8", "8"]
    assert sets["study55"] == ["1", "imported", "55", "2333", "0"]

    chosen = next(q for q in readme_queries() if "others := ['Zero7'" in q)
    assert len(shell(readme_db, chosen)) == 6  # 2 artists against 3 others, as the README says
    counted = next(q for q in readme_queries() if "label < 'M'" in q)
    assert shell(readme_db, counted) == [["60"]]  # 5 labels before M, each against 12 others


# --- the shell examples --------------------------------------------------------------------
# Each ```bash block with a `musicdb` or `duckdb` line follows a marker naming where it runs:
#   <!-- readme-test: demo -->   in a folder where `musicdb demo` wrote musicdb-demo/ (the
#                                Quick start ingests its library into ./music.duckdb)
#   <!-- readme-test: study -->  in a folder with the repository's tests/data (the study's
#                                tables), the commands naming --db study.duckdb
# The blocks of one kind run in README order in one folder (a later example may use what an
# earlier one made), with BROWSER=true so `--open` opens nothing. A line that cannot run here
# is listed in the README source with its reason:
#   <!-- readme-test skip: "musicdb evaluate --experiment xmas --cv 5" takes minutes -->
COMMAND = re.compile(r"^(musicdb|duckdb)\b")
BLOCK = re.compile(r"(?:<!-- readme-test: (?P<where>\w+) -->\n)?```bash\n(?P<body>.*?)```",
                   re.S)
SKIP = re.compile(r'<!-- readme-test skip: "(?P<line>[^"]+)" (?P<why>[^>]*\w[^>]*) -->')
CONTEXTS = ("demo", "study")


@dataclass
class Example:
    where: str | None
    line: str
    readme_line: int


def readme_commands() -> list[Example]:
    text = (REPO / "README.md").read_text()
    found = []
    for block in BLOCK.finditer(text):
        first = text.count("\n", 0, block.start("body")) + 1
        body = block["body"].replace("\\\n", " ")  # continuation lines are one command
        for offset, line in enumerate(body.splitlines()):
            if COMMAND.match(line.strip()):
                found.append(Example(block["where"], line.strip(), first + offset))
    return found


def readme_skips() -> dict[str, str]:
    return {m["line"]: m["why"].strip() for m in SKIP.finditer((REPO / "README.md").read_text())}


def is_skipped(example: Example, skips: dict[str, str]) -> bool:
    return any(example.line.startswith(line) for line in skips)


def test_every_shell_example_says_where_it_runs():
    examples = readme_commands()
    assert len(examples) >= 20
    unmarked = [f"README.md:{e.readme_line}: {e.line}" for e in examples
                if e.where not in CONTEXTS]
    assert not unmarked, "mark the block <!-- readme-test: demo|study -->:\n" + "\n".join(
        unmarked)
    # A shell without -readonly holds the write lock: every musicdb command would be shut out.
    writers = [e.line for e in examples if e.line.startswith("duckdb ")
               and e.line.split()[1] != "-readonly"]
    assert not writers, writers


def test_few_examples_are_skipped_each_for_a_reason():
    skips, examples = readme_skips(), readme_commands()
    assert len(skips) <= 5, skips
    for line, why in skips.items():
        assert len(why) > 10, f"say why {line!r} cannot run in the test"
        assert any(e.line.startswith(line) for e in examples), f"no such example: {line!r}"


def demo_folder(tmp: Path) -> Path:
    """What `musicdb demo` leaves (its library; the same songs), and the files examples name."""
    demo_library(tmp / "musicdb-demo" / "library")
    return tmp


def study_folder(tmp: Path) -> Path:
    """The repository's tests/data at the path the README gives (examples run in the repo)."""
    tmp.mkdir()
    (tmp / "tests").symlink_to(REPO / "tests", target_is_directory=True)
    return tmp


def run_examples(folder: Path, home: Path, examples: list[Example]) -> list[str]:
    """Each line through bash as a user types it; returns what failed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICDB_")}
    env |= {"HOME": str(home), "BROWSER": "true", "COLUMNS": "120",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}
    failed = []
    for example in examples:
        proc = subprocess.run(["bash", "-c", example.line], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0 or "Traceback" in proc.stderr or "Error" in proc.stderr:
            failed.append(f"README.md:{example.readme_line}: {example.line}\n"
                          f"  exit {proc.returncode}: {proc.stderr.strip()[-600:]}")
    return failed


@pytest.mark.slow
@pytest.mark.parametrize("where", CONTEXTS)
def test_shell_examples_run_as_written(where, tmp_path):
    home = tmp_path / "home"
    (home / "Downloads").mkdir(parents=True)
    assert ".mp3" in FORMATS
    write_audio(home / "Downloads" / "new-track.mp3", tone(440.0, 20.0))  # "not in the library"
    folder = (demo_folder if where == "demo" else study_folder)(tmp_path / "work")
    skips = readme_skips()
    examples = [e for e in readme_commands() if e.where == where and not is_skipped(e, skips)]
    assert examples
    failed = run_examples(folder, home, examples)
    assert not failed, f"{len(failed)} of {len(examples)} examples failed:\n" + "\n".join(failed)


def test_info_counts_each_snippet_once(run, readme_db: Path) -> None:
    """As the README's `musicdb info` says: 8 snippets described by two extracted sets (and one
    imported set without snippets) are 8, not 16; the table gives each set's own count."""
    import json

    info = json.loads(run("info", "--db", readme_db, "--json").stdout)
    per_set = {s["feature_set"]: s["snippets"] for s in info["feature_sets"]}
    assert per_set == {"default": 8, "seed55": 8, "study55": 0, "tonal": 8}
    assert info["snippets"] == 8
    assert "snippets: 8 (each once" in run("info", "--db", readme_db).stdout
