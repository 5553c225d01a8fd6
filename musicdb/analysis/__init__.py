"""Pure numerics: a signal in, frame features and feature-set vectors out (no duckdb)."""
