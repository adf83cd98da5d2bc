"""Layer 3, the data engine: connectors, lakehouse, ingest, quality rules, dbt, notifications."""
