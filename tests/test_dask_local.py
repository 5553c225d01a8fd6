"""`ingest --scheduler local:N` (issue 14): a LocalCluster of real worker processes, the same
rows and values as the local pool, and its faults with real processes: a worker SIGKILLed
mid-file, a file that kills its worker every time, a file stuck past its deadline, a path
the worker cannot read (--path-map). Plain runs import nothing of dask."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import musicdb.ingest.run
from musicdb.audio import synth
from tests import dask_faults
from tests.test_ingest import songs, sql, summary_counts

SETS = ("--feature-set", "seed55", "--snippet-seconds", "2")
# hang.flac waits this long for its deadline; the other files (<= 6 s of audio) take well
# under a second each, so 5 s is still a wide margin on a loaded machine.
FILE_TIMEOUT_S = 5
CLEAN = ("tone.flac", "clicks.ogg", "mix.mp3")


CHECK_IMPORTS = """
import atexit, sys

def report():
    print(sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed")))
    print("musicdb.workers.pool" in sys.modules)  # the check is real: this one is imported

if __name__ == "__main__":  # not again in the forkserver, which imports this file too
    atexit.register(report)
    from musicdb.cli import main
    main()
"""


def test_a_plain_run_imports_nothing_of_dask(tmp_path):
    synth.write_audio(tmp_path / "tone.flac", synth.tone(440, 1))
    script = tmp_path / "check_imports.py"
    script.write_text(CHECK_IMPORTS)
    out = subprocess.run(
        [sys.executable, str(script), "ingest", str(tmp_path / "tone.flac"), "--db",
         str(tmp_path / "plain.duckdb"), "--workers", "1", "--feature-set", "seed55"],
        capture_output=True, text=True, timeout=180, env=os.environ | {"COLUMNS": "200"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-2:] == ["[]", "True"], out.stdout


def values(db: Path) -> dict:
    return {(Path(p).name, k): np.array(v) for p, k, v in sql(
        db, "SELECT path, snippet, vals FROM features JOIN songs USING (song_id)")}


def test_local_cluster_equals_the_pool_and_survives_its_workers_dying(
        run, tmp_path, monkeypatch):
    root, mirror = tmp_path / "lib", tmp_path / "mirror"  # the workers see lib as mirror
    (root / "clean").mkdir(parents=True)
    (root / "faulty").mkdir()
    synth.write_audio(root / "clean" / "tone.flac", synth.tone(1000, 3))
    synth.write_audio(root / "clean" / "clicks.ogg", synth.clicks(120, 3))
    synth.write_audio(root / "clean" / "mix.mp3", synth.tone(200, 3) + synth.clicks(100, 3))
    # Largest first: crash and once go first; hang is the smallest, so it is the last job
    # (its worker's restart then meets no other file).
    synth.write_audio(root / "faulty" / "crash.flac", synth.tone(330, 6))
    synth.write_audio(root / "faulty" / "once.flac", synth.tone(660, 5))
    synth.write_audio(root / "faulty" / "unmapped.flac", synth.tone(770, 2))
    synth.write_audio(root / "faulty" / "hang.flac", synth.tone(880, 0.5))
    for path in root.rglob("*.*"):
        if path.name != "unmapped.flac":  # the one file the workers' mount lacks
            (mirror / path.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
            (mirror / path.relative_to(root)).symlink_to(path)

    pool, dask = tmp_path / "pool.duckdb", tmp_path / "dask.duckdb"
    run("ingest", root / "clean", "--db", pool, "--workers", "2", *SETS)
    monkeypatch.setattr(musicdb.ingest.run, "analyse_file", dask_faults.analyse_or_fail)
    result = run("ingest", root, "--db", dask, "--scheduler", "local:2",
                 "--path-map", f"{root}={mirror}", "--file-timeout", str(FILE_TIMEOUT_S), *SETS)

    counts = summary_counts(result.output)
    assert (counts["found"], counts["new"], counts["failed"]) == (7, 4, 3), result.output
    assert "2 workers" in " ".join(result.output.split())
    rows = songs(dask)
    assert sql(dask, "SELECT count(*), count(DISTINCT path) FROM songs") == [(7, 7)]
    assert {name: rows[name]["status"] for name in (*CLEAN, "once.flac")} == dict.fromkeys(
        (*CLEAN, "once.flac"), "ok")
    # once.flac killed its first worker (the marker) and ran again on another.
    assert (mirror / "faulty" / "once.flac.killed").exists()
    crash = rows["crash.flac"]
    assert crash["status"] == "error"
    assert crash["error"].startswith("the analysis process died twice on this file"), crash
    assert len((mirror / "faulty" / "crash.flac.deaths").read_text().split()) == 2
    hang = rows["hang.flac"]
    assert hang["status"] == "error"
    assert hang["error"].startswith(f"analysis took longer than {FILE_TIMEOUT_S} s"), hang
    assert "restarted" in hang["error"]
    unmapped = rows["unmapped.flac"]["error"]
    assert f"cannot read {mirror / 'faulty' / 'unmapped.flac'}" in unmapped
    assert "the Dask worker tcp://127.0.0.1:" in unmapped

    a, b = values(pool), values(dask)
    assert sorted(a) == sorted(k for k in b if k[0] in CLEAN)
    assert {name for name, snippet in a if snippet == -1} == set(CLEAN)  # whole songs...
    assert len(a) > len(CLEAN)  # ...and snippets
    for key in a:  # the same analysis code on both sides: identical values
        np.testing.assert_array_equal(b[key], a[key], err_msg=str(key))
    assert ("once.flac", -1) in b


@pytest.mark.parametrize("spec", ["local:0", "local:x"])
def test_a_bad_local_worker_count_is_one_line(run, db, tmp_path, spec):
    synth.write_audio(tmp_path / "tone.flac", synth.tone(440, 1))
    result = run("ingest", tmp_path / "tone.flac", "--db", db, "--scheduler", spec, code=1)
    assert "local:N needs a whole number" in " ".join(result.output.split())
