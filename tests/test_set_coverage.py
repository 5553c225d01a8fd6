"""A feature set that covers only part of the library (added with --feature-set to some
folders): ingest notes it, and `similar` and `path` name the song and the set it lacks, not
'no song'."""

from __future__ import annotations

import json

from musicdb.audio import synth
from tests.executors import in_process


def test_a_song_without_the_named_set_is_said_so(run, tmp_path, monkeypatch):
    in_process(monkeypatch)
    lib, db = tmp_path / "lib", tmp_path / "m.duckdb"
    synth.demo_library(lib, songs_per_artist=1, seconds=3.0)
    run("ingest", lib, "--db", db, "--snippet-seconds", "0")
    late = synth.tag(synth.write_audio(lib / "late.flac", synth.tone(330.0, 3.0)),
                     artist="Latecomer", title="Only Default")
    partial = run("ingest", lib, "--db", db, "--snippet-seconds", "0", "--feature-set",
                  "default").output
    for name in ("seed55", "tonal"):  # the sets this run did not extend say how to
        assert (f"Note: feature set '{name}' covers 4 of 5 songs; `musicdb ingest FOLDER "
                f"--feature-set {name}` adds the rest.") in partial
    assert "'default' covers" not in partial
    result = run("similar", "Latecomer - Only Default", "--songs", "--feature-set", "seed55",
                 "--db", db, code=1)
    assert ("song 'Latecomer - Only Default' has no values in feature set 'seed55' (run "
            "`musicdb ingest FOLDER --feature-set seed55` to add them)") in result.output
    assert "no song" not in result.output
    # `path` resolves songs the same way; the set that has the song answers for it
    result = run("path", "Latecomer - Only Default", "1", "-n", "3", "--feature-set", "seed55",
                 "--db", db, code=1)
    assert "has no values in feature set 'seed55'" in result.output
    answer = run("similar", str(late), "--songs", "--db", db, "--feature-set", "default",
                 "--json")
    assert len(json.loads(answer.output)["results"]) == 4  # the other four songs
