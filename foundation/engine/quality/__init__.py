"""Quality rules: declared in the source YAML, enforced on every load, reported as Dagster asset checks.

Stages, by what a rule needs to see:
- row   (pandera checks, on each row in flight): between/min/max, accepted values, regex, not null (built-in
        pandera checks, stated as SQL in the landing query: `pandera_sql`), cross-column expressions, custom
        functions (pandera's polars backend on each Arrow batch). Failing rows of an `error` rule are quarantined.
- load  (counts gathered while streaming, decided before the Delta commit): max null %, min rows, row-count
        change, schema contract. A failing `error` rule refuses the whole load: nothing is published.
- table (SQL on DuckDB over the new Delta snapshot): uniqueness across loads, freshness, references.
"""
