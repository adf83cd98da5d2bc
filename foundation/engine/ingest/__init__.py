"""Ingestion: read a source, type and validate its rows, land them in bronze, quarantine the rest."""
