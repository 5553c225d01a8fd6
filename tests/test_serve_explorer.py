"""The web explorer of `musicdb serve` (/ and /api/): its JSON with httpx, and the page in
headless Chromium, against real server processes on a generated library with a stored map."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from musicdb.cli import app
from musicdb.maps.colors import label_styles
from tests import serving
from tests.browser import Browser, chromium
from tests.serving import LIBRARY_SONGS, PASSWORD, USER, Server, copy_library, start_server

library_db = serving.library_db  # the fixture: the shared library, ingested once per run

ARTISTS = sorted({artist for artist, *_ in LIBRARY_SONGS})  # three, two songs each


def invoke(*args: object) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def mapped_db(library_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shared test library (tests/serving.py) with one stored map run (SVD)."""
    folder = tmp_path_factory.mktemp("explorer")
    db = copy_library(library_db, folder)
    invoke("map", "--method", "svd", "-o", folder / "map.html", "--db", db)
    return db


def running(db: Path, folder: Path, user: str | None, *args: str) -> Iterator[Server]:
    started = start_server(db, folder, user=user, args=args)
    yield started
    assert started.stop() == 0, started.stderr()


@pytest.fixture(scope="module")
def open_server(mapped_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server without users: the explorer is open (serve binds loopback only then)."""
    yield from running(mapped_db, tmp_path_factory.mktemp("open"), None)


@pytest.fixture(scope="module")
def open_url(open_server: Server) -> str:
    return open_server.url


@pytest.fixture(scope="module")
def guarded(mapped_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with one user (USER / PASSWORD): the explorer wants a login. Its players'
    playlists are the files of `<folder>/playlists`."""
    folder = tmp_path_factory.mktemp("guarded")
    (folder / "playlists").mkdir()
    yield from running(mapped_db, folder, USER, "--playlists", str(folder / "playlists"))


def get(url: str, **params) -> httpx.Response:
    return httpx.get(url, params=params, timeout=30)


def song_ids(songs: list[dict]) -> list[int]:
    return [s["song_id"] for s in songs]


# ---- the JSON API (no browser needed) -------------------------------------------------------

def test_search_finds_songs_and_artists_by_every_word(open_url):
    hums = get(open_url + "/api/search", q="HUM").json()
    assert sorted(s["title"] for s in hums["songs"]) == ["High Hum", "Low Hum"]
    assert hums["artists"] == []
    low = get(open_url + "/api/search", q="drone low hum").json()["songs"]
    assert [s["title"] for s in low] == ["Low Hum"]  # every word, in title, artist or album
    song = low[0]
    assert song["id"] == f"so-{song['song_id']}"
    assert song["stream"] == f"/api/stream/{song['id']}"
    assert song["path"] == "Drone Choir/Long Hum/01 Low Hum.flac"  # relative to its root
    # Case and accents are ignored on both sides.
    found = get(open_url + "/api/search", q="CLÍCK").json()
    assert [a["name"] for a in found["artists"]] == ["Click Machine"]
    assert sorted(s["title"] for s in found["songs"]) == ["Fast Clicks", "Slow Clicks"]
    # A quote or an SQL fragment is a search for those characters, never SQL.
    for nasty in ("'; DROP TABLE tracks; --", "%", "_", "\\", "' OR 1=1 --"):
        answer = get(open_url + "/api/search", q=nasty)
        assert answer.status_code == 200, nasty
        assert answer.json()["songs"] == [], nasty
    assert len(get(open_url + "/api/search", q="e", limit=4).json()["songs"]) == 4


def test_song_lists_the_similar_songs_of_musicdb_similar(open_url, mapped_db):
    first = get(open_url + "/api/search", q="fast clicks").json()["songs"][0]
    page = get(open_url + f"/api/song/{first['id']}", k=4).json()
    assert (page["song"]["title"], page["song"]["artist"]) == ("Fast Clicks", "Click Machine")
    similar = page["similar"]
    assert len(similar) == 4
    assert first["song_id"] not in song_ids(similar)
    assert [s["distance"] for s in similar] == sorted(s["distance"] for s in similar)
    cli = json.loads(invoke("similar", "--songs", str(first["song_id"]), "-n", "4", "--json",
                            "--db", mapped_db))
    assert song_ids(similar) == [r["song_id"] for r in cli["results"]]
    assert [s["distance"] for s in similar] == pytest.approx(
        [r["distance"] for r in cli["results"]], abs=1e-4)
    # The plain id works as well as so-<id>.
    assert get(open_url + f"/api/song/{first['song_id']}").json()["song"] == page["song"]


def test_artist_has_its_songs_and_the_similar_artists_of_musicdb_similar(open_url, mapped_db):
    artist = get(open_url + "/api/search", q="drone").json()["artists"][0]
    page = get(open_url + f"/api/artist/{artist['id']}").json()
    assert (page["artist"]["name"], page["artist"]["song_count"]) == ("Drone Choir", 2)
    assert [s["title"] for s in page["songs"]] == ["Low Hum", "High Hum"]  # album order
    cli = json.loads(invoke("similar", "Drone Choir", "--json", "--db", mapped_db))
    assert [s["name"] for s in page["similar"]] == [r["name"] for r in cli["results"]]
    assert [s["distance"] for s in page["similar"]] == pytest.approx(
        [r["distance"] for r in cli["results"]])
    assert all(s["id"].startswith("ar-") for s in page["similar"])  # linked to their pages


def test_maps_give_the_stored_points_in_the_map_colours(open_url):
    runs = get(open_url + "/api/maps").json()["runs"]
    assert [(r["method"], r["unit"], r["n_points"]) for r in runs] == [("svd", "song", 6)]
    run = get(open_url + f"/api/maps/{runs[0]['run_id']}").json()
    styles = label_styles(ARTISTS)
    assert [t["name"] for t in run["traces"]] == ARTISTS
    for trace in run["traces"]:
        assert (trace["color"], trace["symbol"]) == styles[trace["name"]]
        assert len(trace["x"]) == len(trace["y"]) == len(trace["songs"]) == 2
        assert {run["songs"][sid]["artist"] for sid in trace["songs"]} == {trace["name"]}


def test_path_has_n_songs_from_a_to_b_one_per_artist(open_url, library_db):
    a = get(open_url + "/api/search", q="low hum").json()["songs"][0]
    b = get(open_url + "/api/search", q="loud noise").json()["songs"][0]
    path = get(open_url + "/api/path", a=a["id"], b=b["id"], n=3).json()["songs"]
    assert [s["id"] for s in path[::2]] == [a["id"], b["id"]]
    assert sorted(s["artist"] for s in path) == ARTISTS  # 3 artists: one song each
    assert path[0]["step"] is None
    assert all(s["step"] > 0 for s in path[1:])

    playlist = get(open_url + "/api/path.m3u8", a=a["id"], b=b["id"], n=3)
    assert playlist.status_code == 200
    assert playlist.headers["content-disposition"].startswith("attachment; filename=")
    lines = playlist.text.splitlines()
    assert lines[0] == "#EXTM3U"
    assert lines[1::2] == [f"#EXTINF:{s['duration']},{s['artist']} - {s['title']}" for s in path]
    root = (library_db.parent / "library").resolve()
    assert lines[2::2] == [str(root / s["path"]) for s in path]  # absolute file paths


def test_stream_sends_the_file_with_range_support(open_url, library_db):
    song = get(open_url + "/api/search", q="soft noise").json()["songs"][0]
    on_disk = (library_db.parent / "library" / song["path"]).read_bytes()
    whole = get(open_url + song["stream"])
    assert whole.status_code == 200
    assert whole.content == on_disk
    part = httpx.get(open_url + song["stream"], headers={"Range": "bytes=10-19"}, timeout=30)
    assert part.status_code == 206
    assert part.content == on_disk[10:20]


@pytest.mark.parametrize(("path", "params", "status", "says"), [
    ("/api/search", {}, 400, "q is missing"),
    ("/api/search", {"q": "song", "limit": "many"}, 400, "limit must be a whole number"),
    ("/api/search", {"q": "song", "limit": "100000"}, 400, "between 1 and 200"),
    ("/api/song/abc", {}, 400, "must be a number"),
    ("/api/song/so-99999", {}, 404, "no song so-99999"),
    ("/api/song/so-1", {"k": "-3"}, 400, "k must be between"),
    ("/api/artist/ar-0000000000000000", {}, 404, "no artist"),
    ("/api/maps/77", {}, 404, "no map run 77"),
    ("/api/maps/x'1", {}, 400, "must be a number"),
    ("/api/path", {"a": "so-1"}, 400, "b is missing"),
    ("/api/path", {"a": "so-1", "b": "so-2", "n": "1000"}, 400, "n must be between 2 and 100"),
    ("/api/path", {"a": "so-1", "b": "so-1"}, 400, "two different songs"),
    ("/api/path.m3u8", {"a": "so-1", "b": "so-99999"}, 404, "no song so-99999"),
    ("/api/stream/..%2F..%2Fetc%2Fpasswd", {}, 404, "no such API call"),
    ("/api/stream/so-..", {}, 400, "must be a number"),
    ("/api/song/so-²", {}, 400, "must be a number"),
    ("/api/song/so-99999999999999999999", {}, 400, "must be a number"),
    ("/api/stream/so-99999", {}, 404, "no playable file for so-99999"),
    ("/api/nothing", {}, 404, "no such API call"),
])
def test_bad_input_is_a_json_error_with_a_4xx_status(open_url, path, params, status, says):
    answer = get(open_url + path, **params)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=40), number=st.integers(-10**12, 10**12))
def test_no_input_makes_a_server_error(open_url, text, number):
    word = quote(text, safe="")
    for path, params in [("/api/search", {"q": text, "limit": text}),
                         (f"/api/song/{word}", {"k": number}),
                         (f"/api/artist/{word}", {}), (f"/api/maps/{word}", {}),
                         ("/api/path", {"a": text, "b": number, "n": number}),
                         ("/api/path.m3u8", {"a": "so-1", "b": text, "n": text}),
                         (f"/api/stream/{word}", {})]:
        answer = get(open_url + path, **params)
        assert answer.status_code < 500, (path, params, answer.text)
        if answer.status_code >= 400:
            assert answer.json()["error"]


def test_assets_are_bundled_and_no_cors_header_is_sent(open_url):
    for name in ("app.js", "style.css", "plotly.min.js"):
        asset = httpx.get(f"{open_url}/static/{name}", headers={"Origin": "http://evil.test"},
                          timeout=30)
        assert asset.status_code == 200, name
        assert len(asset.content) > 1000, name
        assert not any(h.startswith("access-control-") for h in asset.headers), name
    assert get(open_url + "/static/..%2Fexplorer.py").status_code == 404
    page = httpx.get(open_url + "/", headers={"Origin": "http://evil.test"}, timeout=30)
    assert "<script src=\"/static/app.js\">" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    api = httpx.get(open_url + "/api/maps", headers={"Origin": "http://evil.test"}, timeout=30)
    assert not any(h.startswith("access-control-") for h in api.headers)


def test_an_open_explorer_answers_only_to_loopback_names(open_url):
    """DNS rebinding: another site's name pointed at 127.0.0.1 sends its own Host header."""
    port = open_url.rsplit(":", 1)[1]
    for path in ("/", "/api/maps", "/api/stream/so-1"):
        refused = httpx.get(open_url + path, headers={"Host": f"evil.test:{port}"}, timeout=30)
        assert refused.status_code == 403, path
        assert "loopback" in refused.json()["error"]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
        assert httpx.get(open_url + "/api/maps", headers={"Host": host}).status_code == 200


def test_with_a_user_the_explorer_wants_a_login(guarded):
    guarded_url = guarded.url
    assert get(guarded_url + "/").status_code == 303  # to /login
    assert get(guarded_url + "/").headers["location"] == "/login"
    refused = get(guarded_url + "/api/search", q="song")
    assert refused.status_code == 401
    assert "log in" in refused.json()["error"]
    assert get(guarded_url + "/api/stream/so-1").status_code == 401
    wrong = httpx.post(guarded_url + "/login", data={"name": USER, "password": "nope"})
    assert wrong.status_code == 401
    assert "Wrong username or password" in wrong.text
    assert "set-cookie" not in wrong.headers

    with httpx.Client(base_url=guarded_url, timeout=30) as client:
        done = client.post("/login", data={"name": USER, "password": PASSWORD})
        assert done.status_code == 303
        assert done.headers["location"] == "/"
        cookie = done.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert client.get("/api/session").json() == {"user": USER, "auth": True}
        assert len(client.get("/api/search", params={"q": "hum"}).json()["songs"]) == 2
        assert client.get("/").status_code == 200
        # A saved path dropped into the playlists folder is a playlist of the players: its
        # entries are the library's files, so /rest/ matches them to the same songs.
        found = client.get("/api/search", params={"q": "low hum"}).json()["songs"]
        ends = {"a": found[0]["id"], "b": client.get("/api/search", params={
            "q": "slow clicks"}).json()["songs"][0]["id"], "n": 3}
        path = client.get("/api/path", params=ends).json()["songs"]
        saved = client.get("/api/path.m3u8", params=ends)
        (guarded.users_file.parent.parent / "playlists" / "path.m3u8").write_bytes(
            saved.content)
        playlists = guarded.call("getPlaylists")["playlists"]["playlist"]
        assert [p["name"] for p in playlists] == ["path"]
        entries = guarded.call("getPlaylist", id=playlists[0]["id"])["playlist"]["entry"]
        assert [e["id"] for e in entries] == [s["id"] for s in path]

        client.post("/logout")
        assert client.get("/api/search", params={"q": "song"}).status_code == 401
    # Another site's page cannot log anyone in (or out).
    crossed = httpx.post(guarded_url + "/login", data={"name": USER, "password": PASSWORD},
                         headers={"Origin": "http://evil.test"})
    assert crossed.status_code == 403
    assert "set-cookie" not in crossed.headers
    # A made-up cookie opens nothing.
    forged = httpx.get(guarded_url + "/api/maps", cookies={"musicdb_session": "guess"})
    assert forged.status_code == 401


# ---- the page in headless Chromium ----------------------------------------------------------

@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium(loopback=True) as b:
        yield b


def wait_for(browser: Browser, expression: str, timeout: float = 30) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser.driver, timeout).until(
        lambda d: d.execute_script(f"return Boolean({expression})"))


def click(browser: Browser, selector: str) -> None:
    from selenium.webdriver.common.by import By

    browser.driver.find_element(By.CSS_SELECTOR, selector).click()


def type_into(browser: Browser, selector: str, text: str) -> None:
    from selenium.webdriver.common.by import By

    field = browser.driver.find_element(By.CSS_SELECTOR, selector)
    field.clear()
    field.send_keys(text)


PLAYING = "document.getElementById('player').currentTime > 0"


def only_the_server(browser: Browser, url: str) -> None:
    """Nothing fetched from anywhere else, and nothing went wrong in the page."""
    assert browser.errors() == []
    assert all(r.startswith(url + "/") for r in browser.resources()), browser.resources()


def test_search_then_song_then_play(browser, open_url):
    browser.visit(open_url + "/", ready="document.body.dataset.view === '#/'")
    assert browser.js("return document.getElementById('library').textContent").startswith(
        f"{len(LIBRARY_SONGS)} songs by {len(ARTISTS)} artists · feature set default")
    type_into(browser, "#search", "fast clicks\n")
    wait_for(browser, "document.querySelector('ul.songs li a')")
    click(browser, "ul.songs li a")
    wait_for(browser, "document.getElementById('play-song')")
    song = browser.js("return location.hash")
    assert song.startswith("#/song/so-")
    assert browser.js("return document.querySelector('h1').textContent") == "Fast Clicks"
    assert browser.js("return document.querySelectorAll('ol.songs li').length") == 5
    click(browser, "#play-song")
    wait_for(browser, PLAYING)
    src = browser.js("return document.getElementById('player').src")
    assert src == f"{open_url}/api/stream/{song.removeprefix('#/song/')}"

    # Back and forward walk the views (hash navigation).
    click(browser, "main .sub a")  # the artist
    wait_for(browser, "document.querySelector('ol.similar-artists')")
    assert browser.js("return document.querySelector('h1').textContent") == "Click Machine"
    browser.driver.back()
    wait_for(browser, f"document.body.dataset.view === '{song}'")
    browser.driver.forward()
    wait_for(browser, "document.querySelector('ol.similar-artists')")
    only_the_server(browser, open_url)


def test_a_missing_song_is_a_message_on_the_page(browser, open_url):
    # Only the hash may change (no reload): wait for this view, not the one before.
    browser.visit(open_url + "/#/song/so-99999",
                  ready="document.body.dataset.view === '#/song/so-99999'")
    assert browser.js("return document.querySelector('main .message').textContent") == (
        "no song so-99999 in the library")
    # The one failed load is the API's 404; no script error.
    assert [e for e in browser.errors() if "so-99999" not in e or "404" not in e] == []


def pick(browser: Browser, which: str, query: str) -> None:
    type_into(browser, f"#pick-{which}", query)
    wait_for(browser, f"document.querySelector('#pick-{which} ~ ul li')")
    click(browser, f"#pick-{which} ~ ul li")


def test_path_builder_returns_n_songs_and_plays_them(browser, open_url):
    browser.visit(open_url + "/#/path", ready="document.getElementById('build-path')")
    pick(browser, "a", "low hum")
    pick(browser, "b", "loud noise")
    type_into(browser, "#path-n", "3")
    click(browser, "#build-path")
    wait_for(browser, "document.querySelectorAll('#path-result li').length > 0")
    titles = browser.js("return [...document.querySelectorAll('#path-result li .what')]"
                        ".map(li => li.textContent)")
    assert len(titles) == 3
    assert titles[0] == "Low Hum · Drone Choir"
    assert titles[-1] == "Loud Noise · Noise Garden"
    save = browser.js("return document.getElementById('save-path').getAttribute('href')")
    assert save.startswith("/api/path.m3u8?")
    assert "n=3" in save
    click(browser, "#play-path")
    wait_for(browser, PLAYING)
    assert browser.js("return document.getElementById('queue-info').textContent") == "1 of 3"
    # The path plays in sequence: the next song starts when one ends (2.5 s songs).
    wait_for(browser, "document.getElementById('queue-info').textContent === '2 of 3'", 60)
    second = browser.js("return document.querySelectorAll('#path-result li')[1].dataset.id")
    assert browser.js("return document.getElementById('player').src").endswith(
        f"/api/stream/{second}")
    assert browser.js("return document.querySelector('#path-result li.current').dataset.id") \
        == second
    only_the_server(browser, open_url)


def test_map_draws_the_points_and_a_click_plays(browser, open_url):
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    browser.visit(open_url + "/#/maps", ready="document.querySelector('ul.maps a')")
    click(browser, "ul.maps a")
    wait_for(browser, "document.getElementById('map') && "
                      "document.getElementById('map').dataset.drawn")
    drawn = browser.js("return document.getElementById('map')._fullData"
                       ".map(t => [t.name, t.x.length])")
    assert sorted(drawn) == [[name, 2] for name in ARTISTS]
    # The first point of the first trace, in page pixels, clicked with the mouse.
    x, y, song = browser.js("""
        const plot = document.getElementById('map'), layout = plot._fullLayout;
        const box = plot.querySelector('.nsewdrag').getBoundingClientRect();
        const t = plot._fullData[0];
        return [box.left + layout.xaxis.l2p(t.x[0]), box.top + layout.yaxis.l2p(t.y[0]),
                t.customdata[0]];""")
    actions = ActionBuilder(browser.driver)
    actions.pointer_action.move_to_location(round(x), round(y)).click()
    actions.perform()
    wait_for(browser, PLAYING)
    assert browser.js("return document.getElementById('player').src").endswith(
        f"/api/stream/{song}")
    only_the_server(browser, open_url)


def test_browser_login_when_a_user_exists(browser, guarded):
    browser.visit(guarded.url + "/", ready="document.getElementById('login')")
    assert browser.js("return location.pathname") == "/login"
    type_into(browser, "input[name=name]", USER)
    type_into(browser, "input[name=password]", "wrong\n")
    wait_for(browser, "document.getElementById('login-error') && "
                      "document.getElementById('login-error').textContent.includes('Wrong')")
    type_into(browser, "input[name=name]", USER)
    type_into(browser, "input[name=password]", PASSWORD + "\n")
    wait_for(browser, "document.body.dataset.view === '#/'")
    wait_for(browser, "!document.getElementById('logout').hidden")
    assert browser.js("return document.cookie") == ""  # HttpOnly: no script can read it
    type_into(browser, "#search", "hum\n")
    wait_for(browser, "document.querySelectorAll('ul.songs li').length === 2")
    click(browser, "#logout button")
    wait_for(browser, "document.getElementById('login')")
    # The wrong password above was answered 401: the browser logs that one failed load.
    assert [e for e in browser.errors() if "/login" not in e or "401" not in e] == []
