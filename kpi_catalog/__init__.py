"""The KPI catalogue: KPI declarations (YAML), their compilation into dbt models, and the catalogue built from the
dbt manifest and the published KPI values (CLI, JSON and a web page)."""
