"""The inference API: the champion of every registered model over HTTP (FastAPI), with the KPI catalogue mounted.

`serving.app.create_app(workspace_root, settings)` builds the app; `foundation serve` runs it with uvicorn.
"""
