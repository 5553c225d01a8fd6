"""What `musicdb ingest` says before it works (issue 16, sections 3 and 7): an empty folder,
an unknown feature set refused before anything is opened or scanned, and the first run's
kernel compile shown as it happens, with no promise of how long it takes."""

from __future__ import annotations

import re

import musicdb.ingest.run
from musicdb.audio import synth


def test_an_empty_folder_and_an_unknown_feature_set(run, tmp_path):
    (tmp_path / "empty").mkdir()
    db = tmp_path / "music.duckdb"
    result = run("ingest", tmp_path / "empty", "--db", db)  # exit 0: nothing failed
    assert "No audio files found there" in result.output
    other = tmp_path / "other.duckdb"
    refused = run("ingest", tmp_path / "empty", "--db", other, "--feature-set", "seed55,foo",
                  code=1)
    assert ("unknown feature set(s) 'foo'; extracted sets: default, musicnn, seed55, tonal"
            in refused.output)
    assert "scanning" not in refused.output  # refused before the scan...
    assert not other.exists()  # ...and before the database was created


def test_the_compile_notice_promises_no_duration(run, tmp_path, monkeypatch):
    root, db = tmp_path / "lib", tmp_path / "music.duckdb"
    root.mkdir()
    synth.write_audio(root / "a.flac", synth.tone(440, 2))
    monkeypatch.setattr(musicdb.ingest.run, "kernels_cached", lambda: False)  # a first run
    result = run("ingest", root, "--db", db, "--workers", "1", "--feature-set", "seed55")
    notice = next(line for line in result.output.splitlines() if "compiling" in line)
    assert "first run on this machine only" in notice
    assert not re.search(r"\d+ ?s\b", notice), notice  # "~20 s" was 7x off on a busy machine
