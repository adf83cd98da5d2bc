{#- Each use case builds into its own schema (`fleet_maintenance.dim_trucks`), named exactly as its folder. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
