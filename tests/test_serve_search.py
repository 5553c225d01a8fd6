"""search3's trigram index (musicdb.serve.search) gives the rows of the SQL scan it replaces.

The scan is the definition: songs whose label_key'ed search key contains every label_key'ed
word (a substring, anywhere), in search_rank order, paged, optionally in one root. The index
must return the same song ids for every query: tricky names (accents, case, ß, scripts of
several bytes a character, punctuation, LIKE's wildcards), words of one or two letters,
pieces of words, words that span nothing, offsets, roots, and the queries it hands back to
the scan (None) only when it would check too many rows by hand.
"""

from __future__ import annotations

import random

import duckdb
import pytest

from musicdb.serve import search
from musicdb.serve.search import SongSearch
from musicdb.similarity.functions import use_sql_functions

NAMES = [
    ("Straße nach Süden", "Björk", "Homogénic", "/music/a"),
    ("STRASSE", "Sigur Rós", "( )", "/music/a"),
    ("Café del Mar", "José González", "Veneer", "/music/b"),
    ("cafe", "Jose Gonzalez", "Veneer", "/music/b"),
    ("東京の夜", "宇多田ヒカル", "First Love", "/music/a"),
    ("Ünïcödé 😀 smile", "Motörhead", "Ace of Spades", "/music/b"),
    ("100% Pure", "50_Cent", "Get Rich", "/music/a"),
    ("a", "b", "c", "/music/b"),
    ("AC/DC", "AC/DC", "Back in Black", None),
    ("Ωmega", "Ελληνικά", "Ψ", "/music/a"),
    ("", "Untitled Artist", "", "/music/b"),
    ("ǅungla", "Ǆemal", "İstanbul", "/music/a"),
]
QUERIES = [
    ["strasse"], ["straße"], ["süd"], ["sud"], ["bjork"], ["BJÖRK"], ["ros"], ["café"],
    ["cafe"], ["gonz"], ["東京"], ["夜"], ["ヒカル"], ["😀"], ["motor"], ["100%"], ["%"],
    ["_"], ["50_c"], ["a"], ["b"], ["ac/dc"], ["/"], ["ωmega"], ["ελλ"], ["ψ"], ["untitled"],
    ["dzungla"], ["istanbul"], ["i̇stanbul"], ["e"], ["ee"], ["zz"], ["veneer", "jose"],
    ["love", "first"], ["of", "spades", "ace"], ["song", "xyz"], [], ["s", "o"],
    ["hom", "ogén"], ["()"], ["( )"], ["sigur rós"],
]


@pytest.fixture(scope="module")
def tracks() -> duckdb.DuckDBPyConnection:
    """A `tracks` table keyed as snapshot.sql keys it: the tricky names, then filler songs."""
    con = duckdb.connect()
    use_sql_functions(con)
    rng = random.Random(0)
    filler = [(f"Song {n}", f"Artist {rng.randrange(300):03d}", f"Album {n % 7}",
               rng.choice(["/music/a", "/music/b"])) for n in range(3000)]
    con.execute("CREATE TABLE raw (song_id INTEGER, title VARCHAR, artist VARCHAR, "
                "album VARCHAR, root VARCHAR)")
    con.executemany("INSERT INTO raw VALUES (?, ?, ?, ?, ?)",
                    [(i * 3 + 1, *row) for i, row in enumerate(NAMES + filler)])
    con.execute("""
        CREATE TABLE tracks AS
        SELECT song_id, root,
               label_key(concat_ws(' ', title, artist, album, artist)) AS search_key,
               row_number() OVER (ORDER BY label_key(title), label_key(artist), song_id)
                   ::INTEGER AS search_rank
        FROM raw""")
    return con


@pytest.fixture(scope="module")
def index(tracks: duckdb.DuckDBPyConnection) -> SongSearch:
    return SongSearch.load(tracks)


def scan(con: duckdb.DuckDBPyConnection, words: list[str], offset: int, count: int,
         root: str | None = None) -> list[int]:
    """The SQL search3 ran before the index (and runs when the index says None)."""
    keys = con.execute("SELECT list_transform(?::VARCHAR[], lambda w: label_key(w))",
                       [words]).fetchone()[0]
    where = " AND ".join(["contains(search_key, ?)"] * len(keys)) or "true"
    return [r[0] for r in con.execute(
        f"SELECT song_id FROM tracks WHERE {where} AND (?::VARCHAR IS NULL OR root = ?) "
        "ORDER BY search_rank LIMIT ? OFFSET ?", [*keys, root, root, count, offset]).fetchall()]


def keyed(con: duckdb.DuckDBPyConnection, words: list[str]) -> list[str]:
    return con.execute("SELECT list_transform(?::VARCHAR[], lambda w: label_key(w))",
                       [words]).fetchone()[0]


@pytest.mark.parametrize("words", QUERIES, ids=" ".join)
def test_same_songs_as_the_scan(tracks, index: SongSearch, words: list[str]) -> None:
    for offset, count, root in [(0, 20, None), (0, 500, None), (3, 5, None),
                                (0, 20, "/music/a"), (1, 50, "/music/b"),
                                (0, 20, "/nowhere")]:
        found = index.find(keyed(tracks, words), offset, count, root)
        assert found is not None, words
        assert found == scan(tracks, words, offset, count, root), (words, offset, root)


def test_random_pieces_of_keys(tracks, index: SongSearch) -> None:
    """Any substring of any stored key finds what the scan finds, also two at once."""
    keys = [r[0] for r in tracks.execute("SELECT search_key FROM tracks").fetchall()]
    rng = random.Random(1)
    for _ in range(300):
        pieces = []
        for _ in range(rng.choice([1, 1, 2])):
            key = rng.choice(keys).replace(" ", "")
            start = rng.randrange(max(1, len(key)))
            pieces.append(key[start:start + rng.randrange(1, 8)] or "x")
        found = index.find(pieces, 0, 20)
        assert found is not None, pieces
        assert found == scan(tracks, pieces, 0, 20), pieces


def test_count_zero_and_offsets_past_the_end(tracks, index: SongSearch) -> None:
    assert index.find(["song"], 0, 0) == []
    assert index.find(["song"], 10_000, 20) == scan(tracks, ["song"], 10_000, 20) == []
    assert index.find([], 2990, 100) == scan(tracks, [], 2990, 100)


def test_a_rare_short_word_is_left_to_the_scan(tracks, index: SongSearch,
                                               monkeypatch) -> None:
    """Words of one or two letters have no trigram: past VERIFY_BUDGET rows checked by hand,
    find() says None and search3 scans (the answer is the scan's either way)."""
    monkeypatch.setattr(search, "VERIFY_BUDGET", 500)
    assert index.find(["zz"], 0, 20) is None
    assert index.find(["so"], 0, 20) == scan(tracks, ["so"], 0, 20)  # found early


@pytest.fixture(scope="module")
def names(tracks: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """`artists` and `albums` keyed as snapshot.sql keys them, from the same tricky names
    (an artist with album_count 0 too: search3 leaves those out)."""
    tracks.execute("""
        CREATE TABLE albums AS
        SELECT 'al-' || md5(artist || album) AS album_id, min(album) AS name,
               'ar-' || md5(artist) AS artist_id, count(*)::INTEGER AS song_count,
               label_key(min(album)) AS name_key
        FROM raw GROUP BY artist, album""")
    tracks.execute("""
        CREATE TABLE artists AS
        SELECT 'ar-' || md5(artist) AS artist_id, min(artist) AS name,
               (count(DISTINCT album) * (min(song_id) % 5 > 0)::INTEGER)::INTEGER
                   AS album_count, label_key(min(artist)) AS name_key
        FROM raw GROUP BY artist""")
    return tracks


def name_scan(con: duckdb.DuckDBPyConnection, kind: str, words: list[str], offset: int,
              count: int) -> list[dict]:
    """search3's SQL for artists or albums (with no music folder asked for)."""
    keys = keyed(con, words)
    if kind == "artists":
        where = " AND ".join(["contains(a.name_key, ?)"] * len(keys)) or "true"
        sql = (f"SELECT a.* FROM artists a WHERE a.album_count > 0 AND {where} "
               "ORDER BY a.name_key, a.artist_id LIMIT ? OFFSET ?")
    else:
        key = "(a.name_key || ' ' || ar.name_key)"
        where = " AND ".join([f"contains({key}, ?)"] * len(keys)) or "true"
        sql = (f"SELECT a.* FROM albums a JOIN artists ar USING (artist_id) WHERE {where} "
               "ORDER BY a.name_key, a.album_id LIMIT ? OFFSET ?")
    cursor = con.execute(sql, [*keys, count, offset])
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


@pytest.mark.parametrize("kind", ["artists", "albums"])
def test_artists_and_albums_are_the_rows_of_their_scan(names, kind: str) -> None:
    index = search.NameSearch.load(names, kind)
    rng = random.Random(2)
    keys = [r[0] for r in names.execute(f"SELECT name_key FROM {kind}").fetchall()]
    pieces = [[k[i:i + rng.randrange(1, 6)]] for k in rng.sample(keys, 60) if k
              for i in [rng.randrange(len(k))]]
    for words in [*QUERIES, *pieces, ["artist", "0"], ["album"]]:
        for offset, count in [(0, 20), (2, 7), (0, 500)]:
            found = index.find(keyed(names, words), offset, count)
            assert found is not None, words
            assert found == name_scan(names, kind, words, offset, count), (kind, words, offset)


def test_ascii_words_are_keyed_as_the_label_key_macro_keys_them(tracks) -> None:
    """search3 keys ASCII words itself (no query): the same keys as label_key, checked on
    every ASCII character and on random ASCII words."""
    from musicdb.serve.browse import _keys

    characters = [chr(c) for c in range(1, 128)]
    rng = random.Random(3)
    words = [*characters, *("".join(rng.choices(characters, k=12)) for _ in range(300)),
             "STRASSE", "Ss", "MiXeD123", "AC/DC", "100%"]
    assert _keys(None, words) == keyed(tracks, words)
