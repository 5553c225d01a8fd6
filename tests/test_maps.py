"""`musicdb map`: stored runs, stable colours, and the page itself in headless Chromium."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner

from musicdb.audio.synth import demo_library, tag
from musicdb.cli import app
from musicdb.maps.colors import (
    MIN_DELTA_E,
    cielab,
    label_color,
    label_styles,
    label_symbol,
    palette,
)
from tests.browser import Browser, chromium
from tests.conftest import import_study
from tests.test_heatmap import STUDY_COUNTS

GRAPH = "document.getElementById('map')"
DRAWN = f"{GRAPH} && {GRAPH}._fullData && {GRAPH}._fullData.length > 0"
# What plotly drew (plotly >= 6 ships arrays as typed 'bdata': decode through _fullData).
READ_TRACES = f"""
return {GRAPH}._fullData.map(t => ({{
    name: t.name, type: t.type, color: t.marker.color, symbol: t.marker.symbol,
    x: Array.from(t.x), y: Array.from(t.y), index: t.customdata.map(c => c[0]),
    hover: t.customdata.map(c => c.slice(1).join('|'))}}));
"""


def invoke(*args: object) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def run_id(output: str) -> int:
    return int(re.search(r"map run (\d+)", output)[1])


def points(db: Path, run: int) -> dict[str, np.ndarray]:
    """label -> (n, 2) coordinates in the order the page draws them."""
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT label, x, y FROM map_points WHERE run_id = ? "
                           "ORDER BY label, song_id, snippet", [run]).fetchall()
    out: dict[str, list] = {}
    for label, x, y in rows:
        out.setdefault(label, []).append((x, y))
    return {k: np.array(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def study_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The study imported as study55: a copy of the one import the run's modules share."""
    return import_study(tmp_path_factory.mktemp("maps"))


@pytest.fixture(scope="module")
def audio_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 synthetic songs by 4 artists, 10 s snippets; Click Machine's third song on a
    second album."""
    tmp = tmp_path_factory.mktemp("maps-audio")
    files = demo_library(tmp / "lib", songs_per_artist=3, seconds=35.0)
    tag(next(p for p in files if "Click Machine" in str(p) and p.name.startswith("03")),
        album="Second Album")
    db = tmp / "music.duckdb"
    invoke("ingest", tmp / "lib", "--db", db, "--workers", "1", "--snippet-seconds", "10",
           "--feature-set", "seed55")
    return db


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def show(browser: Browser, page: Path) -> list[dict]:
    browser.open(page, ready=DRAWN)
    assert browser.errors() == []
    assert browser.resources() == []  # plotly.js is inline: nothing fetched, works offline
    return browser.js(READ_TRACES)


@pytest.fixture(scope="module")
def svd_map(study_db: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    """The SVD map of all 2,333 songs (its run and its page), made once for the browser test
    and for its database half; neither changes it."""
    page = tmp_path_factory.mktemp("svd-map") / "study.html"
    return run_id(invoke("map", "--method", "svd", "-o", page, "--db", study_db)), page


def test_study_map_in_a_headless_browser(study_db, svd_map, browser, shell):
    run, page = svd_map
    traces = show(browser, page)

    # One trace per label: the legend toggles (click) and isolates (double click) a label.
    assert sorted(t["name"] for t in traces) == sorted(STUDY_COUNTS)
    assert browser.js("return document.querySelectorAll('.legend .traces').length") == 13
    assert {t["type"] for t in traces} == {"scatter"}  # 2,333 points: SVG is fine
    styles = label_styles(STUDY_COUNTS)
    assert len({colour for colour, _ in styles.values()}) == len(STUDY_COUNTS)  # all distinct
    for t in traces:
        assert len(t["x"]) == STUDY_COUNTS[t["name"]]
        assert (t["color"], t["symbol"]) == styles[t["name"]]
        assert t["hover"][0].split("|")[4] == t["name"]  # title|artist|album|file|label|...
    title = browser.js(f"return {GRAPH}._fullLayout.title.text")
    assert all(s in title for s in ("SVD", "2,333 songs", "study55", "seed 0", f"run {run}"))

    # The coordinates stored are the ones drawn, and join to the library in SQL.
    stored = points(study_db, run)
    for t in traces:
        np.testing.assert_allclose(np.column_stack([t["x"], t["y"]]), stored[t["name"]])
    assert shell(study_db, f"SELECT count(*), count(title) FROM map_coordinates "
                           f"WHERE run_id = {run}") == [["2333", "2333"]]

    # The screenshot is not blank: a drawn map compresses far worse than an empty page.
    drawn = len(base64.b64decode(browser.driver.get_screenshot_as_base64()))
    browser.driver.get("about:blank")
    blank = len(base64.b64decode(browser.driver.get_screenshot_as_base64()))
    assert drawn > 5 * blank


@pytest.fixture(scope="module")
def seeded_runs(study_db: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> tuple[list[int], Path]:
    """Three t-SNE maps of Zero7 and Imogen Heap (92 songs: t-SNE in a second), seeds 3, 3
    and 4, and the folder of their pages 0-2.html. Made once for the browser test and for its
    database half; neither changes them."""
    folder = tmp_path_factory.mktemp("seeded-maps")
    runs = [run_id(invoke("map", "--labels", "Zero7,ImogenHeap", "--seed", seed, "-o",
                          folder / f"{i}.html", "--db", study_db))
            for i, seed in enumerate((3, 3, 4))]
    return runs, folder


def last_run(db: Path) -> int:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT max(run_id) FROM map_runs").fetchone()[0]


def test_same_seed_same_map_and_colours_stay(study_db, seeded_runs, browser, tmp_path,
                                             monkeypatch):
    runs, pages = seeded_runs
    first, again, other = (points(study_db, r) for r in runs)
    assert sorted(first) == ["ImogenHeap", "Zero7"]
    for label in first:
        np.testing.assert_array_equal(first[label], again[label])
    assert not np.allclose(first["Zero7"], other["Zero7"])

    traces = show(browser, pages / "0.html")
    assert {t["name"]: t["color"] for t in traces} == {
        "ImogenHeap": label_color("ImogenHeap"), "Zero7": label_color("Zero7")}
    title = browser.js(f"return {GRAPH}._fullLayout.title.text")
    assert all(s in title for s in ("t-SNE", "perplexity 30", "92 songs", "seed 3"))

    # Redrawn from the database: nothing projected, same coordinates, no new run.
    forbid_projection(monkeypatch)
    newest = last_run(study_db)
    output = invoke("map", "--from-run", runs[0], "-o", tmp_path / "again.html",
                    "--db", study_db)
    assert f"map run {runs[0]}" in output
    redrawn = {t["name"]: np.column_stack([t["x"], t["y"]])
               for t in show(browser, tmp_path / "again.html")}
    for label in first:
        np.testing.assert_allclose(redrawn[label], first[label])
    assert last_run(study_db) == newest


def forbid_projection(monkeypatch) -> None:
    """--from-run must redraw the stored coordinates: any projection fails the test."""
    def no_projection(*args, **kwargs):
        raise AssertionError("--from-run must not project")

    monkeypatch.setattr("musicdb.maps.runs.project", no_projection)


def test_stored_runs_without_a_browser(study_db, svd_map, seeded_runs, tmp_path, shell,
                                       monkeypatch):
    """The database half of the two browser tests above, so it runs where Chromium is missing:
    a run stores every point joined to the library, a seed fixes the points, --from-run redraws
    without projecting or adding a run."""
    svd, page = svd_map
    assert page.stat().st_size > 0
    assert {label: len(xy) for label, xy in points(study_db, svd).items()} == STUDY_COUNTS
    assert shell(study_db, f"SELECT count(*), count(title) FROM map_coordinates "
                           f"WHERE run_id = {svd}") == [["2333", "2333"]]

    runs, _ = seeded_runs
    first, again, other = (points(study_db, r) for r in runs)
    assert {label: len(xy) for label, xy in first.items()} == {
        "ImogenHeap": STUDY_COUNTS["ImogenHeap"], "Zero7": STUDY_COUNTS["Zero7"]}
    for label in first:
        np.testing.assert_array_equal(first[label], again[label])
    assert not np.allclose(first["Zero7"], other["Zero7"])

    forbid_projection(monkeypatch)
    newest = last_run(study_db)
    output = invoke("map", "--from-run", runs[0], "-o", tmp_path / "again.html",
                    "--db", study_db)
    assert f"map run {runs[0]}" in output
    assert (tmp_path / "again.html").stat().st_size > 0
    assert last_run(study_db) == newest


def test_clear_errors(run, study_db, tmp_path):
    result = run("map", "--labels", "Zero7,MichaelJacksn", "--db", study_db, code=1)
    assert "no label 'MichaelJacksn'" in result.output
    assert "MichaelJackson" in result.output
    small = run("map", "--labels", "zero7", "--db", study_db, "-o", tmp_path / "z.html")
    assert "Perplexity lowered to 10 for 31 points" in small.output
    assert "no map run 999" in run("map", "--from-run", 999, "--db", study_db, code=1).output
    assert "'pca' is not one of 'svd', 'tsne', 'umap'" in run(
        "map", "--method", "pca", "--db", study_db, code=2).output
    try:
        import umap  # noqa: F401
    except ImportError:
        result = run("map", "--method", "umap", "--db", study_db, code=1)
        assert "pip install umap-learn" in result.output


def click_first_point(browser: Browser, trace: int = 0) -> int:
    """A real mouse click on a trace's first point; returns that point's index."""
    x, y, index = browser.js(f"""
        const gd = {GRAPH}, t = gd._fullData[{trace}], L = gd._fullLayout;
        const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
        return [box.left + L.xaxis.l2p(t.x[0]), box.top + L.yaxis.l2p(t.y[0]),
                t.customdata[0][0]];""")
    from selenium.webdriver.common.action_chains import ActionChains

    browser.mouse_to(x, y)
    ActionChains(browser.driver).click().perform()
    return index


def test_click_plays_the_song_and_lists_neighbours(audio_db, browser, tmp_path):
    page = tmp_path / "songs.html"
    invoke("map", "--method", "svd", "-o", page, "--db", audio_db)
    traces = show(browser, page)
    assert len(traces) == 4
    index = click_first_point(browser)
    state = browser.js("""return {selected: window.musicdbSelected,
        src: document.getElementById('player').src,
        start: document.getElementById('player').dataset.start,
        neighbours: Array.from(document.querySelectorAll('#neighbours li'), li => li.textContent),
        song: MAP.points[window.musicdbSelected].song}""")
    assert state["selected"] == index
    with duckdb.connect(str(audio_db), read_only=True) as con:
        path = con.execute("SELECT path FROM songs WHERE song_id = ?",
                           [state["song"]]).fetchone()[0]
    assert state["src"] == Path(path).as_uri()
    assert state["start"] == "0"
    assert len(state["neighbours"]) == 5
    assert browser.errors() == []  # play() refused or not, nothing is thrown

    # A browser that refuses play() without a user gesture: a play button, not an exception.
    browser.js("""HTMLMediaElement.prototype.play = () =>
        Promise.reject(new DOMException('no gesture', 'NotAllowedError'));
        window.musicdbSelect(MAP.points.length - 1);""")
    browser.js("return new Promise(r => setTimeout(r, 50))")
    assert browser.js("return document.getElementById('play').hidden") is False
    assert "Press play" in browser.js("return document.getElementById('note').textContent")
    assert browser.errors() == []


def test_open_opens_the_page(audio_db, tmp_path, monkeypatch):
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    output = invoke("map", "--method", "svd", "--open", "-o", tmp_path / "o.html",
                    "--db", audio_db)
    assert opened == [(tmp_path / "o.html").resolve().as_uri()]
    assert "No browser" not in output


def test_snippets_of_one_artist_by_album(audio_db, browser, tmp_path):
    page = tmp_path / "snippets.html"
    output = invoke("map", "--method", "svd", "--unit", "snippet", "--labels", "click machine",
                    "--color-by", "album", "-o", page, "--db", audio_db)
    assert "2 albums" in output
    traces = show(browser, page)
    assert [t["name"] for t in traces] == ["First Album", "Second Album"]
    assert [len(t["x"]) for t in traces] == [8, 4]  # 35 s: snippets at 0, 10, 20, 30 s
    assert {t["color"] for t in traces} == {label_color("First Album"),
                                            label_color("Second Album")}
    assert "snippet 3 from 30 s" in " ".join(traces[1]["hover"])

    # A snippet plays from its start; a song whose file is gone still maps, without sound.
    browser.js("window.musicdbSelect(MAP.points.findIndex(p => p.snippet === 2))")
    assert browser.js("return document.getElementById('player').dataset.start") == "20"
    assert browser.js("return document.getElementById('now').textContent").endswith(
        "snippet 2 from 20 s")
    with duckdb.connect(str(audio_db), read_only=True) as con:
        path = Path(con.execute("SELECT path FROM songs WHERE album = 'Second Album'")
                    .fetchone()[0])
        run = con.execute("SELECT max(run_id) FROM map_runs").fetchone()[0]
    path.rename(path.with_suffix(".gone"))
    try:
        invoke("map", "--from-run", run, "-o", tmp_path / "gone.html", "--db", audio_db)
    finally:
        path.with_suffix(".gone").rename(path)
    show(browser, tmp_path / "gone.html")
    browser.js(f"window.musicdbSelect({GRAPH}._fullData[1].customdata[0][0])")
    assert "No audio file" in browser.js("return document.getElementById('note').textContent")
    assert browser.errors() == []


def test_top_keeps_the_largest_labels_in_webgl(study_db, tmp_path, shell, browser,
                                               monkeypatch):
    monkeypatch.setattr("musicdb.plots.mapplot.WEBGL_ABOVE", 1000)  # WebGL without 3,000 points
    output = invoke("map", "--method", "svd", "--top", 3, "--db", study_db, "-o",
                    tmp_path / "top.html")
    traces = show(browser, tmp_path / "top.html")
    assert {t["type"] for t in traces} == {"scattergl"}
    assert browser.js("return document.querySelectorAll('.legend .traces').length") == 3
    assert "(1,350 points, 3 labels)" in output  # TheFlashbulb 560, Classical 467, Xmas 323
    run = run_id(output)
    assert shell(study_db, f"SELECT labels FROM map_runs WHERE run_id = {run}") == [
        ["[TheFlashbulb, Classical, Xmas]"]]


def test_label_styles_move_a_colour_only_when_two_labels_look_alike():
    names = list(STUDY_COUNTS)
    styles = label_styles(names)
    assert min_delta_e([colour for colour, _ in styles.values()]) >= MIN_DELTA_E
    hashed = {n: label_color(n) for n in names}
    moved = [n for n in names if styles[n][0] != hashed[n]]
    assert moved  # the study's 13 names do collide (e.g. TheFlashbulb and PinkFloyd)
    for name in moved:  # a label moves only when its own colour is close to one kept before
        assert any(min_delta_e([hashed[name], styles[other][0]]) < MIN_DELTA_E
                   for other in names if other != name)
    assert all(symbol == label_symbol(n) for n, (_, symbol) in styles.items())
    assert label_styles(reversed(names)) == styles  # the order they come in does not matter
    pair = ["ImogenHeap", "Zero7"]  # far apart: both keep their own colours
    assert label_styles(pair) == {n: (label_color(n), label_symbol(n)) for n in pair}


def min_delta_e(colours: list[str]) -> float:
    """The smallest CIELAB distance between two of the colours."""
    lab = cielab(colours)
    d = np.linalg.norm(lab[:, None, :] - lab[None, :, :], axis=2)
    np.fill_diagonal(d, np.inf)
    return float(d.min())


def test_no_two_labels_of_a_small_map_look_alike():
    """Any 6 names (the issue's 6-label map had three near-identical purples), and up to 20:
    every two colours at least MIN_DELTA_E apart in CIELAB."""
    rng = np.random.default_rng(0)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    for size in (6, 13, 20):
        for _ in range(100):
            names = ["".join(rng.choice(letters, 8)) for _ in range(size)]
            colours = [c for c, _ in label_styles(names).values()]
            assert min_delta_e(colours) >= MIN_DELTA_E, names
    # Pure red and green are far apart; the palette does hold colours that look alike (which
    # is why a label can move), such as two of its purples.
    assert min_delta_e(["#FF0000", "#00FF00"]) > 80
    assert min_delta_e(list(palette())) < MIN_DELTA_E / 3


def test_open_without_a_browser_says_where_the_page_is(run, study_db, tmp_path, monkeypatch):
    """A machine with no browser: no DISPLAY, no BROWSER, nothing on PATH to run. Python's
    webbrowser makes its list of browsers at its first use: it is made again here, from this
    environment, as a fresh process would (in-process: no second start of musicdb)."""
    import os
    import webbrowser

    page = tmp_path / "nobrowser.html"
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER", "TERM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(webbrowser, "_tryorder", None)
    monkeypatch.setattr(webbrowser, "_browsers", {})
    result = run("map", "--method", "svd", "--labels", "Zero7", "--open", "-o", page,
                 "--db", study_db)
    assert page.is_file()
    lines = [line for line in result.stderr.splitlines() if "browser" in line]
    assert lines == [f"No browser found to open the page: open {page.resolve()} yourself"]
    assert os.environ.get("MUSICDB_DB") is None  # (the fixture's isolation held)


def test_file_name_says_the_perplexity_used_and_counts_read_well(run, study_db):
    small = run("map", "--labels", "zero7", "--db", study_db)  # 31 points: perplexity 10
    assert "Perplexity lowered to 10 for 31 points" in small.output
    assert "(31 points, 1 label)" in small.output
    assert Path("map-study55-tsne-song-Zero7-p10-seed0.html").is_file()
    assert not list(Path().glob("*p30*"))


def test_album_colours_of_songs_without_albums_warn(run, study_db, tmp_path):
    result = run("map", "--labels", "TheFlashbulb", "--color-by", "album", "--method", "svd",
                 "-o", tmp_path / "albums.html", "--db", study_db)
    warnings = [line for line in result.output.splitlines() if line.startswith("Warning:")]
    assert warnings == ["Warning: none of the 560 points of this map has an album tag "
                        "(imported songs have none): every point is one colour; use "
                        "--color-by label"]
    assert "(560 points, 1 album)" in result.output
    labelled = run("map", "--labels", "TheFlashbulb", "--method", "svd",
                   "-o", tmp_path / "labels.html", "--db", study_db)
    assert "Warning" not in labelled.output
