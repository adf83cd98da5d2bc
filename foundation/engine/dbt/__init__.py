"""dbt for a workspace: the project made ready to run (`project`: validated, generated files written, manifest
parsed), the warehouse's single-writer lock and bronze views (`warehouse`, `spark`), and the gold snapshots readers
use (`publish`)."""
