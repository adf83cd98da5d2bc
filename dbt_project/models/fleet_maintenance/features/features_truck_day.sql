-- The training table of the failure model: one row per truck-day.
-- Features use only data up to the end of that day (windows look backwards); the label looks forward:
-- a failure in the next `failure_horizon_days` days after the day. `label_window_complete` is false when the
-- data ends before the label window does (such rows must not be used for training).
{% set horizon = var('failure_horizon_days') | int %}
with days as (
    select *, {{ add_days('date_day', 1) }} as day_end from {{ ref('fct_truck_day') }}
),

last_day as (
    select max(date_day) as last_date_day from days
),

maintenance_ends as (
    select truck_id, ended_at from {{ ref('fct_maintenance') }} where ended_at is not null
),

failures as (
    select truck_id, failed_at from {{ ref('fct_failures') }}
),

rolling as (
    select
        truck_id,
        date_day,
        day_end,
        segment,
        truck_type,
        model_year,
        readings,
        operating_hours,
        km_driven,
        avg_engine_temp_c,
        max_engine_temp_c,
        avg_oil_pressure_kpa,
        min_oil_pressure_kpa,
        avg_vibration_mm_s,
        max_vibration_mm_s,
        avg_coolant_temp_c,
        max_coolant_temp_c,
        avg(avg_engine_temp_c) over last_3_days as engine_temp_c_3d,
        avg(avg_oil_pressure_kpa) over last_3_days as oil_pressure_kpa_3d,
        avg(avg_vibration_mm_s) over last_3_days as vibration_mm_s_3d,
        avg(avg_coolant_temp_c) over last_3_days as coolant_temp_c_3d,
        avg_engine_temp_c - avg(avg_engine_temp_c) over last_7_days as engine_temp_c_vs_7d,
        avg_oil_pressure_kpa - avg(avg_oil_pressure_kpa) over last_7_days as oil_pressure_kpa_vs_7d,
        avg_vibration_mm_s - avg(avg_vibration_mm_s) over last_7_days as vibration_mm_s_vs_7d,
        avg_coolant_temp_c - avg(avg_coolant_temp_c) over last_7_days as coolant_temp_c_vs_7d
    from days
    window
        last_3_days as (partition by truck_id order by date_day range between interval 2 days preceding and current row),
        last_7_days as (partition by truck_id order by date_day range between interval 6 days preceding and current row)
),

since_maintenance as (
    select
        rolling.truck_id,
        rolling.date_day,
        {{ seconds_between('maintenance_ends.ended_at', 'rolling.day_end') }} / 3600.0 as hours
    from rolling
    {{ asof_left_join(
        'rolling', 'maintenance_ends', 'truck_id', 'day_end', '>', 'ended_at', left_key=['truck_id', 'date_day']
    ) }}
),

past_failures as (
    select rolling.truck_id, rolling.date_day, count(failures.failed_at) as failures_last_30d
    from rolling
    left join failures
        on rolling.truck_id = failures.truck_id
        and failures.failed_at < rolling.day_end
        and failures.failed_at >= {{ add_days('rolling.day_end', -30) }}
    group by all
),

labels as (
    select rolling.truck_id, rolling.date_day, count(failures.failed_at) > 0 as failure_within_horizon
    from rolling
    left join failures
        on rolling.truck_id = failures.truck_id
        and failures.failed_at >= rolling.day_end
        and failures.failed_at < {{ add_days('rolling.day_end', horizon) }}
    group by all
)

select
    {{ star_except('rolling', ['day_end']) }},
    since_maintenance.hours as hours_since_maintenance,
    past_failures.failures_last_30d,
    labels.failure_within_horizon,
    {{ add_days('rolling.date_day', horizon) }} <= last_day.last_date_day as label_window_complete,
    {{ horizon }} as horizon_days
from rolling
cross join last_day
left join since_maintenance using (truck_id, date_day)
left join past_failures using (truck_id, date_day)
left join labels using (truck_id, date_day)
