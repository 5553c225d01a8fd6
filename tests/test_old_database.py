"""A database written by the main of 2026-12-01 (schema 4, flat package) opens with today's
musicdb, migrates in place, and holds exactly the values today's code computes from the same
files (tests/data/main-2026-12-01/README.md says how it was made)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import duckdb
import numpy as np

from tests.conftest import REPO

OLD = REPO / "tests" / "data" / "main-2026-12-01"


def rows(db: Path) -> dict[tuple[str, str, int], np.ndarray]:
    """(content hash, feature set, snippet) -> values."""
    with duckdb.connect(str(db), read_only=True) as con:
        found = con.execute(
            "SELECT s.content_hash, fs.name, f.snippet, f.vals FROM features f "
            "JOIN songs s USING (song_id) JOIN feature_sets fs USING (feature_set_id)").fetchall()
    return {(h, name, snippet): np.asarray(vals, np.float32) for h, name, snippet, vals in found}


def test_an_old_main_database_migrates_with_identical_values(run, tmp_path):
    db = tmp_path / "old.duckdb"
    with gzip.open(OLD / "music.duckdb.gz") as packed, db.open("wb") as out:
        shutil.copyfileobj(packed, out)
    before = rows(db)
    assert len(before) == 12  # 2 songs x 2 sets x (whole + 2 snippets)

    run("info", "--db", db)  # schema 4 reads without a migration
    lib = tmp_path / "lib"
    shutil.copytree(OLD / "lib", lib)
    fresh = tmp_path / "fresh.duckdb"
    run("ingest", lib, "--db", fresh, "--snippet-seconds", "2")
    # A write command migrates the old file in place (0005 similarity state, 0006 the key).
    run("ingest", lib, "--db", db, "--snippet-seconds", "2")
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT max(version) FROM _migrations").fetchone()[0] >= 6
    after = rows(db)
    assert set(before) <= set(after)  # nothing lost; the moved files keep their songs' values
    for key, values in before.items():
        np.testing.assert_array_equal(after[key], values)
        # Today's code computes the same numbers (to float32 rounding: another process order).
        np.testing.assert_allclose(rows(fresh)[key], values, rtol=1e-5, atol=1e-6)
