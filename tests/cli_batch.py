"""Several `musicdb` commands in one real process, for tests that need a process of its own
(a private mount namespace, a file-mode sandbox) but not one per command.

`python -m tests.cli_batch DB CMD_JSON...` runs each command (a JSON list of arguments) through
the real CLI in this process, one after another, and prints one JSON list: for each command
its exit code, stdout, stderr and the state of DB afterwards (sha256, mtime, its folder's
listing), so a test can check every command as it would a process of its own. A musicdb
process costs ~1 CPU s to start (its imports); a batch pays that once.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path


def db_state(path: Path) -> list:
    """What a refusal must not change: the file's SHA-256 and mtime, and its folder's listing."""
    data = path.read_bytes() if path.exists() else None
    return [hashlib.sha256(data).hexdigest() if data is not None else None,
            path.stat().st_mtime_ns if path.exists() else None,
            sorted(p.name for p in path.parent.iterdir())]


def main(db: Path, commands: list[list[str]]) -> list[dict]:
    from typer.testing import CliRunner

    from musicdb.cli import app

    results = []
    for args in commands:
        # An exception escapes as the traceback of this process: the test sees it.
        result = CliRunner().invoke(app, args, prog_name="musicdb", catch_exceptions=False)
        results.append({"code": result.exit_code, "stdout": result.stdout,
                        "stderr": result.stderr, "state": db_state(db)})
    return results


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), [json.loads(a) for a in sys.argv[2:]])))
