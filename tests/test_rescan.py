"""Re-scans that change nothing: a touched file is not analysed again, the database file does
not grow, symbolic links are still resolved once the scan stops resolving plain files. All
through the real CLI."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

import musicdb.ingest.run
from musicdb.audio import synth
from tests.test_ingest import ingest, sql, summary_counts


def songs_by_name(db: Path) -> dict[str, tuple]:
    rows = sql(db, "SELECT path, song_id, mtime_ns, content_hash, status, folder FROM songs")
    return {Path(r[0]).name: r[1:] for r in rows}


@pytest.fixture
def touched_library(tmp_path: Path) -> Path:
    root = tmp_path / "library"
    (root / "Artist").mkdir(parents=True)
    synth.tag(synth.write_audio(root / "Artist" / "a.ogg", synth.clicks(120, 3)), artist="A")
    synth.write_audio(root / "Artist" / "b.mp3", synth.tone(330, 3))
    synth.write_audio(root / "c.wav", synth.noise(3, sr=22050, seed=4), sr=22050)
    return root


def test_touched_files_are_not_analysed_again(run, db, touched_library, calls, monkeypatch):
    ingest(run, touched_library, db)
    assert sorted(calls) == ["a.ogg", "b.mp3", "c.wav"]
    calls.clear()
    before = songs_by_name(db)
    refreshes: list[int] = []
    real = musicdb.ingest.run.refresh_similarity
    monkeypatch.setattr(musicdb.ingest.run, "refresh_similarity",
                        lambda con: refreshes.append(1) or real(con))

    later = {}
    for name in ("Artist/a.ogg", "Artist/b.mp3"):  # `touch a.ogg b.mp3`
        path = touched_library / name
        st = path.stat()
        later[path.name] = st.st_mtime_ns + 7_000_000_000
        os.utime(path, ns=(st.st_atime_ns, later[path.name]))
    result = ingest(run, touched_library, db)
    assert calls == []  # decoded and analysed again before
    assert summary_counts(result.output)["unchanged"] == 3
    assert "Nothing to analyse" in result.output
    assert refreshes == []  # nothing the similarity tables read changed
    after = songs_by_name(db)
    for name, mtime in later.items():
        assert after[name][1] == mtime  # stored: the next scan does not hash it again
        assert after[name][0] == before[name][0]  # the same song
        assert after[name][2] == before[name][2]  # and content
    assert after["c.wav"] == before["c.wav"]

    result = ingest(run, touched_library, db)
    assert "hashing 0 new or changed files" in result.output
    assert calls == []


def test_same_size_new_content_is_analysed_again(run, db, touched_library, calls):
    """The control: same size and a new mtime, but other bytes (samples overwritten)."""
    ingest(run, touched_library, db)
    calls.clear()
    c = touched_library / "c.wav"
    size = c.stat().st_size
    with c.open("r+b") as f:
        f.seek(size // 2)
        f.write(os.urandom(2000))
    st = c.stat()
    os.utime(c, ns=(st.st_atime_ns, st.st_mtime_ns + 7_000_000_000))
    assert c.stat().st_size == size
    result = ingest(run, touched_library, db)
    assert calls == ["c.wav"]
    assert summary_counts(result.output)["changed"] == 1


def test_a_touched_failure_is_tried_again(run, db, tmp_path, calls):
    """A file that failed may have failed for a reason a later mtime resolves ("changed while
    being read"): touched, it is tried again, as before."""
    root = tmp_path / "lib"
    root.mkdir()
    synth.write_audio(root / "good.flac", synth.tone(440, 2))
    (root / "bad.mp3").write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"not audio " * 500)
    ingest(run, root, db)
    calls.clear()
    st = (root / "bad.mp3").stat()
    os.utime(root / "bad.mp3", ns=(st.st_atime_ns, st.st_mtime_ns + 7_000_000_000))
    ingest(run, root, db)
    assert calls == ["bad.mp3"]


def file_blocks(db: Path) -> int:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT total_blocks FROM pragma_database_size()").fetchone()[0]


def test_unchanged_reingests_do_not_grow_the_file(run, db, touched_library):
    """DuckDB writes changed blocks anew and reuses the freed ones at a later checkpoint, so
    the file settles after a few runs; runs that change nothing (one touch run among them)
    must not add to it after that."""
    blocks = []
    for i in range(10):
        if i == 6:
            st = (touched_library / "c.wav").stat()
            os.utime(touched_library / "c.wav", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        result = ingest(run, touched_library, db)
        assert summary_counts(result.output)["unchanged"] == (0 if i == 0 else 3)
        blocks.append(file_blocks(db))
    settled, touched = blocks[2], blocks[6]
    assert max(blocks[3:6]) <= settled + 1, blocks  # no-op runs: nothing rewritten
    assert touched <= settled + 3, blocks  # the touch run: one mtime, no features rewritten
    assert max(blocks[7:]) <= touched + 1, blocks
    assert db.stat().st_size <= (touched + 2) * 256 * 1024, blocks
    assert sql(db, "SELECT count(*) FROM ingest_runs") == [(10,)]  # every run still recorded


def test_symbolic_links_are_resolved_and_plain_files_keep_their_path(run, db, tmp_path):
    """Only a link's path can differ from its real one below the (resolved) root: a link to a
    file outside the library is stored at its target, a link to a file inside is one song."""
    outside, root = tmp_path / "outside", tmp_path / "lib"
    (root / "Band").mkdir(parents=True)
    outside.mkdir()
    synth.write_audio(outside / "far.flac", synth.tone(300, 2))
    synth.write_audio(root / "Band" / "near.flac", synth.tone(500, 2))
    (root / "Band" / "far-link.flac").symlink_to(outside / "far.flac")
    (root / "Band" / "near-link.flac").symlink_to(root / "Band" / "near.flac")
    (tmp_path / "lib-link").symlink_to(root)
    result = ingest(run, tmp_path / "lib-link", db)
    assert summary_counts(result.output)["new"] == 2
    rows = dict(sql(db, "SELECT path, folder FROM songs"))
    assert rows == {str((outside / "far.flac").resolve()): "Band",
                    str((root / "Band" / "near.flac").resolve()): "Band"}


def test_the_plan_asks_for_workers_only_when_a_file_may_need_analysing(run, db, touched_library,
                                                                       calls):
    """plan(on_work=executor.warm_up): an unchanged re-scan starts no worker processes; a
    touched or new file starts them before hashing (a touched file is hashed to find out)."""
    from musicdb.ingest.plan import plan
    from musicdb.ingest.run import _Quiet
    from musicdb.ingest.write import register_sets
    from musicdb.store import database as store

    ingest(run, touched_library, db)

    def asked() -> list[int]:
        requests: list[int] = []
        with store.connect(db) as con:
            set_ids = register_sets(con, ("seed55",), 30.0, musicdb.ingest.run.FrameParams())
            plan(con, [touched_library], set_ids, _Quiet(), retry_errors=False,
                 on_work=lambda: requests.append(1))
        return requests

    assert asked() == []
    st = (touched_library / "c.wav").stat()
    os.utime(touched_library / "c.wav", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert asked() == [1]
    synth.write_audio(touched_library / "d.flac", synth.tone(600, 2))
    assert asked() == [1]


def test_an_unchanged_reingest_leaves_no_worker_process_behind(tmp_path, touched_library):
    """The worker pool's forkserver, started early to overlap the scan, is stopped with the
    run when nothing needed it: it would go on loading kernels after the summary, holding the
    terminal's stderr (`| tee` waited for it). Real processes, found by an environment mark."""
    import subprocess
    import sys
    import uuid

    import psutil

    musicdb_cmd = str(Path(sys.executable).with_name("musicdb"))
    db = tmp_path / "m.duckdb"
    args = [musicdb_cmd, "ingest", str(touched_library), "--db", str(db), "--feature-set",
            "seed55", "--workers", "1"]
    subprocess.run(args, check=True, capture_output=True, timeout=600)
    mark = uuid.uuid4().hex
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600,
                          env=os.environ | {"MUSICDB_TEST_MARK": mark})
    assert proc.returncode == 0, proc.stderr
    assert "3 unchanged" in proc.stderr

    def marked() -> list[psutil.Process]:
        found = []
        for p in psutil.process_iter():
            try:
                if p.environ().get("MUSICDB_TEST_MARK") == mark:
                    found.append(p)
            except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
        return found

    left = marked()
    assert [p.cmdline() for p in left if "forkserver" in " ".join(p.cmdline())] == []


def test_tags_are_read_by_content_whatever_the_name(tmp_path):
    """Tags come from the class the first bytes allow (mutagen no longer scores every format
    against every file): Vorbis, Opus, FLAC and WAV tags, and a FLAC file named .mp3."""
    from musicdb.audio.tags import read_file_info

    for name in ("a.flac", "b.ogg", "c.opus", "d.mp3"):
        synth.tag(synth.write_audio(tmp_path / name, synth.tone(440, 1, sr=48000), sr=48000),
                  artist=name, date="1999", tracknumber="3/9")
    synth.write_audio(tmp_path / "e.wav", synth.tone(440, 1))
    (tmp_path / "f.mp3").write_bytes((tmp_path / "a.flac").read_bytes())  # mislabelled
    for name in ("a.flac", "b.ogg", "c.opus", "d.mp3"):
        tags, length = read_file_info(tmp_path / name)
        assert (tags["artist"], tags["year"], tags["track"]) == (name, 1999, 3), name
        assert length == pytest.approx(1.0, abs=0.1)
    assert read_file_info(tmp_path / "f.mp3")[0]["artist"] == "a.flac"
    tags, length = read_file_info(tmp_path / "e.wav")
    assert set(tags.values()) == {None}  # untagged
    assert length == pytest.approx(1.0)


def test_an_unchanged_reingest_starts_no_workers(run, db, touched_library, monkeypatch):
    """Through the CLI: the first run starts the pool once, an unchanged re-run never (the
    command no longer warms the pool up before the scan)."""
    from musicdb.workers.pool import LocalPool

    started: list[int] = []
    real = LocalPool.warm_up

    def counted(self) -> None:
        started.append(1)
        real(self)

    monkeypatch.setattr(LocalPool, "warm_up", counted)
    run("ingest", touched_library, "--db", db, "--feature-set", "seed55", "--workers", "1")
    assert started == [1]
    result = run("ingest", touched_library, "--db", db, "--feature-set", "seed55",
                 "--workers", "1")
    assert "3 unchanged" in result.stderr
    assert started == [1]
