"""Routers: health, models, predict, invocations (MLflow-compatible)."""
