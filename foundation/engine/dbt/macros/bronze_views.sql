{#- Sources read `bronze.<usecase>__<source>`, kept current before each build by foundation (dbt_project.yml's
    on-run-start calls this). DuckDB: nothing to do here, foundation.engine.dbt.warehouse refreshed the views already.
    Spark (dbt-spark session): the views are created in the run's own session, from the statements file that
    foundation.engine.dbt.spark wrote (one statement a line; its path is the Spark setting spark.foundation.bronze_views),
    so the build reads the Delta snapshots current when it started. -#}
{% macro register_bronze_views() -%}
    {{ return(adapter.dispatch('register_bronze_views', 'foundation')()) }}
{%- endmacro %}

{% macro default__register_bronze_views() -%}{%- endmacro %}

{% macro spark__register_bronze_views() -%}
    {%- if execute -%}
        {%- set path = run_query("set spark.foundation.bronze_views").columns[1].values()[0] -%}
        {%- if path and not path.startswith('<') -%}
            {%- do run_query("create database if not exists bronze") -%}
            {%- for row in run_query("select value from text.`" ~ path ~ "`") -%}
                {%- do run_query(row[0]) -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
