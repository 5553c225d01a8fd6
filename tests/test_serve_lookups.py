"""The server's in-memory song lookups (musicdb.serve.tracks), its Server-Timing header and the
fast failing `import pandas` (musicdb.serve.server._no_pandas_imports)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from musicdb.serve import snapshot as snapshots
from musicdb.serve.browse import child
from musicdb.serve.tracks import COLUMNS
from tests import serving
from tests.serving import Server, library_db  # noqa: F401  (a module fixture)

server = serving.server


@pytest.fixture(scope="module")
def snap(library_db: Path):  # noqa: F811
    loaded = snapshots.load(library_db)
    yield loaded
    loaded.con.close()


def _sql_rows(snap, song_ids: list[int]) -> list[dict]:
    result = snap.cursor().execute(
        "SELECT t.* FROM unnest(?::INTEGER[]) AS w(song_id) JOIN tracks t USING (song_id)",
        [song_ids])
    names = [d[0] for d in result.description]
    by_id = {row[0]: dict(zip(names, row, strict=True)) for row in result.fetchall()}
    return [{k: by_id[s][k] for k in COLUMNS} for s in song_ids if s in by_id]


def test_rows_are_the_rows_sql_gives_in_the_order_asked(snap):
    ids = [int(s) for s in snap.tracks.song_ids]
    assert len(ids) == snap.songs >= 3
    assert ids == sorted(ids)
    asked = [*reversed(ids), 10**9, ids[0], -1]  # unknown ids left out, repeats kept
    rows = snap.tracks.rows(asked)
    assert [r["song_id"] for r in rows] == [*reversed(ids), ids[0]]
    assert rows == _sql_rows(snap, asked)
    for mine, theirs in zip(rows, _sql_rows(snap, asked), strict=True):
        assert {k: type(v) for k, v in mine.items()} == {k: type(v) for k, v in theirs.items()}
    assert snap.tracks.rows([]) == []


def test_the_table_holds_every_column_a_child_element_reads(snap):
    """child() of a full `tracks` row and of the in-memory row are the same element."""
    full = snap.cursor().execute("SELECT * FROM tracks ORDER BY song_id LIMIT 1")
    row = dict(zip([d[0] for d in full.description], full.fetchone(), strict=True))
    assert child(snap.tracks.rows([row["song_id"]])[0]) == child(row)


@pytest.mark.parametrize("bad", ["", "so-", "so-01", "so-+1", "so-1 ", " so-1", "ar-1", "so-²",
                                 "so-1e3", "so-99999999999999999999999", "so--1"])
def test_by_id_finds_exactly_the_ids_of_the_tracks_table(snap, bad):
    first = int(snap.tracks.song_ids[0])
    assert snap.tracks.by_id(f"so-{first}") == _sql_rows(snap, [first])[0]
    assert snap.tracks.by_id(bad.replace("1", str(first))) is None


def test_every_answer_says_how_long_the_server_took(server: Server):
    response = server.get("getSong", id=server.call("search3", query="")["searchResult3"]
                          ["song"][0]["id"])
    timing = response.headers["server-timing"]
    parts = dict(re.findall(r"(\w+);dur=([0-9.]+)", timing))
    assert set(parts) == {"wait", "handler", "total"}, timing
    assert float(parts["total"]) >= float(parts["handler"])


def test_import_pandas_fails_at_once_and_pyarrow_still_works():
    """In a fresh interpreter: the finder must not break pyarrow's own pandas probe (a None in
    sys.modules did) nor DuckDB's."""
    code = """
import importlib.util, sys
if importlib.util.find_spec("pandas") is not None:
    print("pandas installed"); sys.exit(0)
from musicdb.serve.server import _no_pandas_imports
_no_pandas_imports(); _no_pandas_imports()
import numpy as np, pyarrow as pa, duckdb
try:
    import pandas
except ModuleNotFoundError as exc:
    assert exc.name == "pandas", exc
else:
    raise AssertionError("pandas imported")
assert pa.array([5, 6, 7]).take(np.array([2, 0])).to_pylist() == [7, 5]
assert duckdb.connect().execute("SELECT ?::INTEGER + 1", [1]).fetchone() == (2,)
assert importlib.util.find_spec("numpy") is not None
try:
    importlib.util.find_spec("pandas")
except ModuleNotFoundError:
    pass
else:
    raise AssertionError("find_spec answered")
print(sum(type(f).__name__ == "_NoPandas" for f in sys.meta_path))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in ("1", "pandas installed")
