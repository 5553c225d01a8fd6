"""sql/00_functions.sql (label_key, label_distance) on a read-only connection.

A reader cannot create views, so a database whose views an older musicdb wrote lacks these
functions until the next write command; as TEMP macros (in memory, nothing written) they are
there for every reader, with the one definition of the file.
"""

from __future__ import annotations

import duckdb

from musicdb.store.schema import data_dir

FUNCTIONS = "00_functions.sql"


def use_sql_functions(con: duckdb.DuckDBPyConnection) -> None:
    """Create the shared scalar functions as TEMP macros of this connection."""
    sql = (data_dir("sql") / FUNCTIONS).read_text(encoding="utf-8")
    con.execute(sql.replace("CREATE OR REPLACE MACRO", "CREATE OR REPLACE TEMP MACRO"))
