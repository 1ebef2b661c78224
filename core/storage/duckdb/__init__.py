"""DuckDB, the embedded default: the cross-process lease, the caching dialect, and the
journal of output commits with its pending writes, fold and recovery."""
