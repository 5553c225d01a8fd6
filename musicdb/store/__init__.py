"""The DuckDB file: opening and checking it, schema, rows, import and export."""
