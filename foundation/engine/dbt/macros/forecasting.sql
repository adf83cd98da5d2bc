{#-
  The forecasting pattern (docs/mlops.md#regression-and-forecasts): features made only of the past, per series.
  Each macro renders one window expression, the same text on DuckDB and Spark; `partition_by` names the series
  (e.g. 'centre_id'), `order_by` its time column. The current row never enters a feature: a forecast made at a
  period's start cannot know that period's value.
-#}

{#- The value `periods` rows back in the series (last week's value with periods=1 on weekly rows). -#}
{% macro lag_feature(column, partition_by, order_by, periods=1) -%}
    lag({{ column }}, {{ periods }}) over (partition by {{ partition_by }} order by {{ order_by }})
{%- endmacro %}

{#- `fn` (avg, sum, min, max, stddev) over the `periods` rows before the current one; NULL until that much history
    exists, so a moving average of 4 weeks is never an average of 1. -#}
{% macro rolling_feature(fn, column, partition_by, order_by, periods) -%}
    case when count({{ column }}) over (partition by {{ partition_by }} order by {{ order_by }}
                                       rows between {{ periods }} preceding and 1 preceding) = {{ periods }}
         then {{ fn }}({{ column }}) over (partition by {{ partition_by }} order by {{ order_by }}
                                          rows between {{ periods }} preceding and 1 preceding)
    end
{%- endmacro %}
