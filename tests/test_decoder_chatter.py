"""A damaged mp3 (an encoded file with bytes overwritten in its middle): libmpg123 prints
"Note: Illegal Audio-MPEG-Header ... Trying to resync" to file descriptor 2, which would land
in the middle of the progress bar. Neither an ingest (workers) nor an analysis in the command's
own process (`similar FILE --songs`) lets it through; MUSICDB_TRACEBACKS=1 does, which shows
the file really makes the decoder talk. Real processes: the terminal's stderr is theirs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from musicdb.audio import synth

MUSICDB = str(Path(sys.executable).with_name("musicdb"))
CHATTER = ("Illegal Audio-MPEG-Header", "resync", "part2_3_length", "libmpg123", "Note:")


def damaged_mp3(path: Path) -> Path:
    synth.write_audio(path, synth.tone(440, 6) + synth.noise(6, amp=0.1))
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(3)
    for offset in range(len(data) // 3, 2 * len(data) // 3, 997):
        data[offset:offset + 40] = rng.integers(0, 256, 40, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    root.mkdir()
    synth.write_audio(root / "good.flac", synth.tone(330, 4))
    damaged_mp3(root / "damaged.mp3")
    return root


def decode_in_a_process(path: Path, **env: str) -> subprocess.CompletedProcess:
    code = "import sys; from musicdb.audio.decode import decode; decode(sys.argv[1])"
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=120, env=os.environ | env)


def test_the_damaged_mp3_makes_the_decoder_talk_only_when_asked(library):
    loud = decode_in_a_process(library / "damaged.mp3", MUSICDB_TRACEBACKS="1")
    assert loud.returncode == 0, loud.stderr
    assert "Illegal Audio-MPEG-Header" in loud.stderr  # the control: the file is damaged
    quiet = decode_in_a_process(library / "damaged.mp3")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""


def test_ingest_and_similar_file_keep_decoder_text_off_the_terminal(library, tmp_path):
    db = tmp_path / "m.duckdb"
    proc = subprocess.run([MUSICDB, "ingest", str(library), "--db", str(db), "--workers", "1",
                           "--feature-set", "seed55"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    summary = " ".join(proc.stderr.split())
    assert "2 files: 2 new, 0 changed, 0 unchanged, 0 moved, 0 missing, 0 failed" in summary
    for text in CHATTER:
        assert text not in proc.stderr + proc.stdout, proc.stderr

    proc = subprocess.run([MUSICDB, "similar", str(library / "damaged.mp3"), "--songs",
                           "--db", str(db)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "good" in proc.stdout
    for text in CHATTER:
        assert text not in proc.stderr + proc.stdout, proc.stderr


def test_a_decoding_failure_keeps_the_decoders_last_word(tmp_path):
    """The decoder's message is not thrown away when it explains a failure: it ends the
    error."""
    from musicdb.audio.chatter import DecoderLog

    with DecoderLog() as log:
        with log.capturing():
            os.write(2, b"Note: Illegal Audio-MPEG-Header 0x51ba306b at offset 23397.\n"
                        b"Note: Trying to resync...\n")
        assert log.last_message() == "Note: Trying to resync..."
