"""The README's SQL runs in the real duckdb shell on a file musicdb wrote, with expected numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from musicdb.audio.synth import demo_library
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
    text = re.sub(r"_(seed55|study55|default)(?![a-z0-9])", "_<set>", text)
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
