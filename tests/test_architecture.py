"""The package layer rule (.importlinter, README "Architecture") holds, and the checker would
notice if it did not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

LINT = str(Path(sys.executable).with_name("lint-imports"))


def lint(config: Path, cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(pythonpath)}
    return subprocess.run([LINT, "--config", str(config), "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_musicdb_keeps_its_layers():
    proc = lint(REPO / ".importlinter", REPO, REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "BROKEN" not in proc.stdout


def test_a_deliberate_violation_is_caught(tmp_path):
    """A copy of the contract over a small package whose lower layer imports the upper one."""
    pkg = tmp_path / "layered"
    for layer in ("cli", "store"):
        (pkg / layer).mkdir(parents=True)
        (pkg / layer / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "store" / "rows.py").write_text("from layered.cli import app  # upward: forbidden\n")
    (pkg / "cli" / "app.py").write_text("from layered.store import rows\n")
    config = tmp_path / ".importlinter"
    config.write_text("[importlinter]\nroot_package = layered\n\n"
                      "[importlinter:contract:layers]\nname = layers\ntype = layers\n"
                      "layers =\n    layered.cli\n    layered.store\n")
    proc = lint(config, tmp_path, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "layered.store.rows -> layered.cli" in proc.stdout
