"""The real CLI, killed in the middle of refreshing the similarity tables.

`python -m tests.dying_refresh import ...` runs `musicdb import ...`; the refresh's refill pass
ends the process with os._exit after refilling its first table: no rollback, no close, as a
kill -9 would, inside store.refresh_similarity's open transaction (its deletes done).
"""

from __future__ import annotations

import os

from musicdb.store import database as store


class DieAfterFirstRefill(tuple):
    """SIMILARITY_TABLES whose forward pass (the refill) dies after one table.

    The delete pass goes through reversed(), which reads items by index, not through __iter__.
    """

    def __iter__(self):
        yield self[0]
        os._exit(137)


if __name__ == "__main__":
    store.SIMILARITY_TABLES = DieAfterFirstRefill(store.SIMILARITY_TABLES)
    from musicdb.cli import app

    app(prog_name="musicdb")
