"""The lakehouse: Delta tables per layer (bronze today), their load state, and DuckDB access to them."""
