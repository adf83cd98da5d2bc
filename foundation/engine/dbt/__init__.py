"""dbt for a workspace: the project made ready to run (profile, generated sources and KPI models, manifest),
the warehouse's single-writer lock and bronze views, and the gold snapshots readers use."""
