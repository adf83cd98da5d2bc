"""YAML specs of a workspace (sources, use cases): typed models, loading with line numbers, validation."""
