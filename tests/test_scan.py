"""Scanning: a folder that cannot be listed is named in the summary, and its songs are not
taken for missing. Real processes, with root's power to read anything taken away."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from musicdb.audio import synth
from tests.test_hostile import unprivileged_prefix

MUSICDB = str(Path(sys.executable).with_name("musicdb"))


def ingest(prefix: tuple[str, ...], root: Path, db: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([*prefix, MUSICDB, "ingest", str(root), "--db", str(db),
                           "--feature-set", "seed55", "--workers", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    return proc


def test_an_unlisted_folder_is_named_and_its_songs_are_not_missing(tmp_path):
    prefix = unprivileged_prefix(tmp_path)
    if not prefix and os.geteuid() == 0:
        pytest.skip("running as root without setpriv: root lists every folder")
    root, db = tmp_path / "lib", tmp_path / "music.duckdb"
    (root / "Kept").mkdir(parents=True)
    (root / "Locked").mkdir()
    synth.write_audio(root / "Kept" / "a.flac", synth.tone(440, 2))
    synth.write_audio(root / "Locked" / "b.flac", synth.tone(550, 2))
    ingest((), root, db)
    (root / "Locked").chmod(0)
    try:
        proc = ingest(prefix, root, db)
    finally:
        (root / "Locked").chmod(0o755)
    summary = " ".join(proc.stderr.split())
    assert f"folder not scanned {root / 'Locked'}: Permission denied" in summary
    assert "0 missing" in summary
    with duckdb.connect(str(db), read_only=True) as con:
        rows = dict(con.execute("SELECT regexp_extract(path, '[^/]*$'), status FROM songs")
                    .fetchall())
    assert rows == {"a.flac": "ok", "b.flac": "ok"}


def test_a_usage_error_is_one_line_with_exit_code_2(tmp_path):
    for args, message in ((["ingest", str(tmp_path / "nowhere")], "does not exist"),
                          (["info", "--db", str(tmp_path)], "is a directory"),
                          (["bogus"], "No such command 'bogus'")):
        proc = subprocess.run([MUSICDB, *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("Error: "), proc.stderr
        assert message in lines[0]
        assert "--help`" in lines[0]


def test_a_folder_without_audio_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = ingest((), tmp_path / "empty", tmp_path / "music.duckdb")
    assert "No audio files found there" in proc.stderr


def test_decoder_chatter_on_damaged_mp3_stays_off_the_terminal(tmp_path):
    """mpg123 prints "Illegal Audio-MPEG-Header ... Trying to resync" on a damaged mp3; the
    error row says what matters."""
    root = tmp_path / "lib"
    root.mkdir()
    synth.write_audio(root / "good.flac", synth.tone(440, 2))
    (root / "text.mp3").write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"not audio " * 500)
    (root / "noise.mp3").write_bytes(b"\xff\xfb\x90\x00" + bytes(range(256)) * 40)
    proc = ingest((), root, tmp_path / "music.duckdb")
    for chatter in ("Illegal Audio-MPEG-Header", "resync", "Note:", "Warning:"):
        assert chatter not in proc.stderr + proc.stdout, proc.stderr
