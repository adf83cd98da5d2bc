{#-
  SQL that differs between the engines dbt builds on, isolated here so every model keeps one text.

  `default__` is DuckDB's SQL, rendered exactly as the models wrote it before these macros existed; `spark__` is
  Spark SQL (dbt-spark, and dbt-databricks, whose dispatch falls back to `spark__`). Another engine (Trino, ...)
  adds its `<adapter>__` implementations here. docs/data-model.md lists the macros; docs/operations.md the targets.
-#}

{#- Seconds from `start` to `end` (timestamps), as a fraction. DuckDB: epoch of the interval. -#}
{% macro seconds_between(start, end) -%}
    {{ return(adapter.dispatch('seconds_between', 'foundation')(start, end)) }}
{%- endmacro %}

{% macro default__seconds_between(start, end) -%}
    epoch({{ end }} - {{ start }})
{%- endmacro %}

{#- Spark has no epoch of an interval; 1e6 is a double, so no DECIMAL rounding creeps in. -#}
{% macro spark__seconds_between(start, end) -%}
    ((unix_micros(cast({{ end }} as timestamp)) - unix_micros(cast({{ start }} as timestamp))) / 1e6)
{%- endmacro %}


{#- `expr` moved by a whole number of days, as a timestamp (DuckDB: date + interval is a timestamp). -#}
{% macro add_days(expr, days) -%}
    {{ return(adapter.dispatch('add_days', 'foundation')(expr, days)) }}
{%- endmacro %}

{% macro default__add_days(expr, days) -%}
    {%- if days | int < 0 -%}{{ expr }} - interval {{ -(days | int) }} day{%- else -%}{{ expr }} + interval {{ days }} day{%- endif -%}
{%- endmacro %}

{#- Spark: date + interval stays a date; cast first so the result is a timestamp as on DuckDB. -#}
{% macro spark__add_days(expr, days) -%}
    {%- if days | int < 0 -%}
        (cast({{ expr }} as timestamp) - interval {{ -(days | int) }} day)
    {%- else -%}
        (cast({{ expr }} as timestamp) + interval {{ days }} day)
    {%- endif -%}
{%- endmacro %}


{#- Every column of `relation` but `columns` (a list). DuckDB: EXCLUDE; Spark: EXCEPT. -#}
{% macro star_except(relation, columns) -%}
    {{ return(adapter.dispatch('star_except', 'foundation')(relation, columns)) }}
{%- endmacro %}

{% macro default__star_except(relation, columns) -%}
    {{ relation }}.* exclude ({{ columns | join(', ') }})
{%- endmacro %}

{% macro spark__star_except(relation, columns) -%}
    {{ relation }}.* except ({{ columns | join(', ') }})
{%- endmacro %}


{#- Every column, with some replaced: `replacements` is a list of [expression, column] pairs.
    DuckDB: SELECT * REPLACE; Spark: the other columns, then the replaced ones (the order of a CTE's columns
    does not matter to the queries reading it by name). -#}
{% macro star_replace(replacements) -%}
    {{ return(adapter.dispatch('star_replace', 'foundation')(replacements)) }}
{%- endmacro %}

{% macro default__star_replace(replacements) -%}
    *{% if replacements %} replace ({% for expression, column in replacements %}{{ expression }} as {{ column }}{{ ', ' if not loop.last }}{% endfor %}){% endif %}
{%- endmacro %}

{% macro spark__star_replace(replacements) -%}
    {%- if replacements -%}
        * except ({% for expression, column in replacements %}{{ column }}{{ ', ' if not loop.last }}{% endfor %}), {% for expression, column in replacements %}{{ expression }} as {{ column }}{{ ', ' if not loop.last }}{% endfor %}
    {%- else -%}*{%- endif -%}
{%- endmacro %}


{#- The name of the string type in casts (DuckDB: varchar; Spark: string, its varchar needs a length). -#}
{% macro string_type() -%}
    {{ return(adapter.dispatch('string_type', 'foundation')()) }}
{%- endmacro %}

{% macro default__string_type() -%}varchar{%- endmacro %}

{% macro spark__string_type() -%}string{%- endmacro %}


{#- LEFT ASOF JOIN: each row of `left` gets the nearest row of `right` with the same `by` column and
    `left.left_on <op> right.right_on` (op one of <, <=, >, >=); `left_key` (a list) identifies a row of `left`.
    Used as `from <left> {{ asof_left_join(...) }}`; the joined columns are read as `<right>.<column>`.
    Spark has no ASOF join: the same match is the first row of an inner join ranked by distance. -#}
{% macro asof_left_join(left, right, by, left_on, op, right_on, left_key) -%}
    {%- if op not in ['<', '<=', '>', '>='] -%}
        {{ exceptions.raise_compiler_error("asof_left_join: op must be one of <, <=, >, >= (got " ~ op ~ ")") }}
    {%- endif -%}
    {{ return(adapter.dispatch('asof_left_join', 'foundation')(left, right, by, left_on, op, right_on, left_key)) }}
{%- endmacro %}

{% macro default__asof_left_join(left, right, by, left_on, op, right_on, left_key) -%}
    asof left join {{ right }}
        on {{ left }}.{{ by }} = {{ right }}.{{ by }} and {{ left }}.{{ left_on }} {{ op }} {{ right }}.{{ right_on }}
{%- endmacro %}

{% macro spark__asof_left_join(left, right, by, left_on, op, right_on, left_key) -%}
    {#- left <= right: the nearest right value is the smallest one; left >= right: the largest -#}
    {%- set direction = 'asc' if op in ['<', '<='] else 'desc' -%}
    left join (
        select
            {% for key in left_key %}_asof_left.{{ key }} as _asof_key_{{ loop.index }}, {% endfor %}_asof_right.*,
            row_number() over (
                partition by {% for key in left_key %}_asof_left.{{ key }}{{ ', ' if not loop.last }}{% endfor %}
                order by _asof_right.{{ right_on }} {{ direction }}
            ) as _asof_rank
        from {{ left }} as _asof_left
        inner join {{ right }} as _asof_right
            on _asof_left.{{ by }} = _asof_right.{{ by }} and _asof_left.{{ left_on }} {{ op }} _asof_right.{{ right_on }}
    ) as {{ right }}
        on {% for key in left_key %}{{ left }}.{{ key }} = {{ right }}._asof_key_{{ loop.index }} and {% endfor %}{{ right }}._asof_rank = 1
{%- endmacro %}


{#- A float average summed in a fixed order: ingestion lands rows in any order, and a plain avg() then differs in the
    last digits from run to run, enough to move a gradient-boosting threshold (issue 5). -#}
{% macro ordered_avg(expr, order_by) -%}
    {{ return(adapter.dispatch('ordered_avg', 'foundation')(expr, order_by)) }}
{%- endmacro %}

{% macro default__ordered_avg(expr, order_by) -%}
    avg({{ expr }} order by {{ order_by }})
{%- endmacro %}

{#- Spark has no ordered aggregates; its average stays order-dependent in the last digits. -#}
{% macro spark__ordered_avg(expr, order_by) -%}
    avg({{ expr }})
{%- endmacro %}
