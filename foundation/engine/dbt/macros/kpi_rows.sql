{#- The rows a simple KPI aggregates: every column of its model, with each dimension as a string in which a real
    NULL reads 'unknown' (a NULL dimension in the KPI table means "all values together"). The KPI models that
    kpi_catalog/compile.py generates call it; DuckDB renders `* replace (coalesce(cast("d" as varchar), ...) as "d")`. -#}
{% macro kpi_dimensions_star(dimensions, unknown='unknown') -%}
    {%- set replacements = [] -%}
    {%- for dimension in dimensions -%}
        {%- set column = adapter.quote(dimension) -%}
        {%- do replacements.append(
            ["coalesce(cast(" ~ column ~ " as " ~ string_type() ~ "), '" ~ unknown ~ "')", column]
        ) -%}
    {%- endfor -%}
    {{ star_replace(replacements) }}
{%- endmacro %}
