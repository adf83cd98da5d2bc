"""Source connectors: each turns an `extract:` block into a DuckDB relation to read from, in batches."""
