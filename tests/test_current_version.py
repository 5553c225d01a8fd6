"""Which version of a feature set similarity, maps and features_<set> use: the one holding the
most songs, the newest among equals. A version made by `--n-fft` does not hide the songs a later
plain ingest adds to the version of the default parameters, and does not take over while it
covers fewer songs than the one before."""

from __future__ import annotations

import json
from pathlib import Path

from musicdb.audio import synth
from tests.test_ingest import ingest, sql


def current(db: Path) -> dict[str, int]:
    rows = sql(db, "SELECT s.name, s.version FROM latest_feature_sets l JOIN feature_sets s "
                   "USING (feature_set_id)")
    return dict(rows)


def test_the_version_with_the_songs_is_the_current_one(run, tmp_path):
    lib = tmp_path / "lib"
    for i in range(4):
        (lib / f"A{i}").mkdir(parents=True)
    for i, hz in enumerate((220, 330, 440)):
        synth.tag(synth.write_audio(lib / f"A{i}" / f"s{i}.flac", synth.tone(hz, 2.5)),
                  artist=f"Artist {i}", title=f"Song {i}")
    db = tmp_path / "m.duckdb"
    ingest(run, lib, db)
    assert current(db) == {"seed55": 1}

    ingest(run, lib / "A0", db, "--n-fft", "1024")  # a new version of one song of three
    assert current(db) == {"seed55": 1}  # it covers fewer songs: the old one stays current
    ingest(run, lib, db, "--n-fft", "1024")  # now as many songs: the newer one takes over
    assert current(db) == {"seed55": 2}
    assert sql(db, "SELECT count(*) FROM features_seed55")[0][0] == 3

    synth.tag(synth.write_audio(lib / "A3" / "s3.flac", synth.tone(660, 2.5)),
              artist="Artist 3", title="Song 3")
    ingest(run, lib, db)  # a plain ingest adds the new song to version 1 only
    assert current(db) == {"seed55": 1}
    assert sql(db, "SELECT count(*) FROM features_seed55")[0][0] == 4  # the view follows
    song = sql(db, "SELECT song_id FROM songs WHERE path LIKE '%s3.flac'")[0][0]
    answer = json.loads(run("similar", str(song), "--songs", "--json", "--db", db).stdout)
    assert len(answer["results"]) == 3
    answer = json.loads(run("similar", "Artist 3", "--json", "--db", db).stdout)
    assert {r["name"] for r in answer["results"]} == {"Artist 0", "Artist 1", "Artist 2"}
