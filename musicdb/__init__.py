"""musicdb: a music feature store with a SQL face."""

__version__ = "0.1.0"
