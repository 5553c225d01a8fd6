"""The tables a musicdb file must hold, as read from the migrations' text, are the tables
running those migrations really creates."""

import duckdb

from musicdb.store import schema


def test_expected_tables_match_running_the_migrations():
    migrations = schema.load_migrations()
    for upto in range(1, len(migrations) + 1):
        versions = tuple(m.version for m in migrations[:upto])
        con = duckdb.connect(config=schema.NO_EXTENSIONS)
        try:
            schema.migrate(con, migrations[:upto])
            created = schema._tables(con)
        finally:
            con.close()
        assert schema._expected_tables(versions) == created, versions
