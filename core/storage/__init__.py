"""Storage: the catalog database and its transactions, the schema, caches of committed
facts, and the blob store. ``core.storage.duckdb`` holds what is DuckDB's alone (the
lease, the dialect, the journal of output commits and its fold)."""
