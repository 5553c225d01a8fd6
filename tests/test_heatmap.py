"""`musicdb heatmap`: the HTML page it writes, opened in headless Chromium with no network."""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import duckdb
import pytest

from tests.browser import Browser, chromium
from tests.conftest import SEED_CSV, import_study

GRAPH = "document.querySelector('.plotly-graph-div')"
DRAWN = f"{GRAPH} && {GRAPH}._fullData && {GRAPH}._fullData.length > 0"
# What plotly drew: labels, and z as plain arrays (plotly >= 6 ships arrays as typed 'bdata').
READ_TRACE = f"""
const t = {GRAPH}._fullData[0];
return {{type: t.type, x: Array.from(t.x), y: Array.from(t.y),
         z: Array.from(t.z, row => Array.from(row)), customdata: t.customdata,
         title: {GRAPH}._fullLayout.title.text}};
"""

with SEED_CSV.open(newline="", encoding="utf-8") as f:
    STUDY_COUNTS = Counter(row["label"] for row in csv.DictReader(f))  # 13 labels, 2,333 songs


@pytest.fixture(scope="module")
def study_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The study's 2,333 songs (13 labels), imported through the real CLI."""
    db = import_study(tmp_path_factory.mktemp("heatmap"))
    return db


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def tick(name: str) -> str:
    return f"{name} ({STUDY_COUNTS[name]:,} songs)"


def show(browser: Browser, page: Path) -> dict:
    browser.open(page, ready=DRAWN)
    assert browser.errors() == []
    assert browser.resources() == []  # plotly.js is inline: nothing fetched
    assert browser.js(f"return {GRAPH}.data.length") == 1
    return browser.js(READ_TRACE)


def test_heatmap_in_a_headless_browser(run, study_db, browser, tmp_path):
    page = tmp_path / "out.html"
    result = run("heatmap", "-o", page, "--db", study_db)
    assert "13 labels" in result.output
    assert str(page) in result.output.replace("\n", "")
    trace = show(browser, page)

    assert trace["type"] == "heatmap"
    assert len(STUDY_COUNTS) == 13
    assert sum(STUDY_COUNTS.values()) == 2333
    assert sorted(trace["y"]) == sorted(tick(name) for name in STUDY_COUNTS)
    assert trace["x"] == trace["y"]
    assert "study55" in trace["title"]
    assert "auto" in trace["title"]
    assert "centroid" in trace["title"]
    z, n = trace["z"], 13
    assert [len(row) for row in z] == [n] * n
    for i in range(n):
        assert z[i][i] == 0
        for j in range(n):
            assert z[i][j] == z[j][i]
            assert i == j or z[i][j] > 0

    # The numbers are the artist_distances view's, as the duckdb shell sees them.
    names = [label.rsplit(" (", 1)[0] for label in trace["y"]]
    with duckdb.connect(str(study_db), read_only=True) as con:
        sql = dict(((a, b), d) for a, b, d in con.execute(
            "SELECT artist, other, euclidean FROM artist_distances "
            "WHERE feature_set = 'study55' AND label_from = 'auto'").fetchall())
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if i != j:
                assert z[i][j] == pytest.approx(sql[a, b], rel=1e-12)
    assert trace["customdata"][2][5] == [names[2], names[5]]

    # Clustered order: neighbours are closer than in alphabetical order.
    def path(order: list[int]) -> float:
        return sum(z[a][b] for a, b in pairwise(order))

    alphabetical = sorted(range(n), key=lambda i: names[i])
    assert path(list(range(n))) < path(alphabetical)

    # Hovering a cell with the mouse shows both names and the distance.
    browser.mouse_to(*browser.js(f"""
        const gd = {GRAPH}, fl = gd._fullLayout, box = gd.getBoundingClientRect();
        return [box.left + fl.xaxis._offset + fl.xaxis.l2p(5),
                box.top + fl.yaxis._offset + fl.yaxis.l2p(2)];"""))
    hover = browser.js("return Array.from(document.querySelectorAll('.hoverlayer .hovertext'),"
                       " e => e.textContent).join(' ')")
    assert names[2] in hover
    assert names[5] in hover
    assert f"{z[2][5]:.3f}" in hover
    assert browser.errors() == []


def test_songs_method_has_the_spread_on_the_diagonal(run, study_db, browser, tmp_path):
    page = tmp_path / "songs.html"
    run("heatmap", "-o", page, "--db", study_db, "--method", "songs", "--label-from",
        "imported")
    trace = show(browser, page)
    assert "songs" in trace["title"]
    assert "imported" in trace["title"]
    with duckdb.connect(str(study_db), read_only=True) as con:
        variance = dict(con.execute("SELECT label, variance FROM artist_centroids "
                                    "WHERE label_from = 'imported'").fetchall())
    z = trace["z"]
    for i, label in enumerate(trace["y"]):
        name = label.rsplit(" (", 1)[0]
        assert z[i][i] == pytest.approx(math.sqrt(2 * variance[name]))
        assert all(z[i][j] == z[j][i] for j in range(len(z)))


def test_min_songs_drops_small_labels(run, study_db, browser, tmp_path):
    page = tmp_path / "big.html"
    result = run("heatmap", "-o", page, "--db", study_db, "--min-songs", "100")
    assert "7 labels" in result.output
    assert sum(songs >= 100 for songs in STUDY_COUNTS.values()) == 7
    trace = show(browser, page)
    assert sorted(trace["y"]) == sorted(tick(n) for n, songs in STUDY_COUNTS.items()
                                        if songs >= 100)
    assert len(trace["z"]) == 7


def test_labels_counted_without_a_browser(run, study_db, tmp_path):
    """The command's half of the browser tests above, so it runs where Chromium is missing."""
    page = tmp_path / "out.html"
    result = run("heatmap", "-o", page, "--db", study_db)
    assert "13 labels" in result.output
    assert str(page) in result.output.replace("\n", "")
    assert page.stat().st_size > 0
    big = run("heatmap", "-o", tmp_path / "big.html", "--db", study_db, "--min-songs", "100")
    assert "7 labels" in big.output
    assert sum(songs >= 100 for songs in STUDY_COUNTS.values()) == 7


def test_the_page_is_self_contained(run, study_db, tmp_path):
    page = tmp_path / "artists.html"
    run("heatmap", "-o", page, "--db", study_db, "--method", "cosine")
    html = page.read_text(encoding="utf-8")
    assert "<html" in html
    assert "Plotly.newPlot" in html
    sources = re.findall(r"<script[^>]*\ssrc\s*=\s*[\"']?([^\"' >]+)", html, re.I)
    assert not [s for s in sources if re.match(r"(https?:)?//", s, re.I)], sources


@pytest.mark.parametrize(("args", "message"), [
    (["--feature-set", "nope"], "no feature set 'nope'; known: study55"),
    # a --label-from or --method not among the choices is a usage error (exit 2) before any
    # work: tests/test_conventions.py checks it on every command
    (["--min-songs", "500"], "at least 2 labels"),
])
def test_bad_requests_are_one_line_errors(run, study_db, tmp_path, args, message):
    page = tmp_path / "nothing.html"
    result = run("heatmap", "-o", page, "--db", study_db, *args, code=1)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error:")
    assert message in lines[0]
    assert "Traceback" not in result.output
    assert not page.exists()


def test_a_missing_database_is_an_error(run, tmp_path):
    result = run("heatmap", "-o", tmp_path / "x.html", "--db", tmp_path / "none.duckdb", code=1)
    assert "Error:" in result.output
    assert not (tmp_path / "none.duckdb").exists()
