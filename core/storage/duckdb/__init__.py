"""DuckDB, the embedded default: the cross-process lease, the caching dialect, and
commits written behind (the journal, its record format, its fold and recovery)."""
