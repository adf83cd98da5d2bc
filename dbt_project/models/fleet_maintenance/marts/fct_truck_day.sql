-- One row per truck and day with telemetry: sensor aggregates, operating hours, downtime and failures.
-- Telemetry is hourly: one reading with the engine under load (rpm >= 1000) is one operating hour.
{% set day_end = add_days('days.date_day', 1) %}
with readings as (
    select * from {{ ref('stg_engine_telemetry') }}
),

days as (
    select
        truck_id,
        cast(reading_at as date) as date_day,
        count(*) as readings,
        count(*) filter (where rpm >= 1000) * {{ var('hours_per_reading', 1) }} as operating_hours,
        {{ ordered_avg('engine_temp_c', 'reading_at') }} as avg_engine_temp_c,
        max(engine_temp_c) as max_engine_temp_c,
        {{ ordered_avg('oil_pressure_kpa', 'reading_at') }} as avg_oil_pressure_kpa,
        min(oil_pressure_kpa) as min_oil_pressure_kpa,
        {{ ordered_avg('vibration_mm_s', 'reading_at') }} as avg_vibration_mm_s,
        max(vibration_mm_s) as max_vibration_mm_s,
        {{ ordered_avg('coolant_temp_c', 'reading_at') }} as avg_coolant_temp_c,
        max(coolant_temp_c) as max_coolant_temp_c,
        max(mileage_km) - min(mileage_km) as km_driven
    from readings
    group by all
),

downtime as (
    -- hours of each day covered by a downtime interval (an open interval runs to the end of the day)
    select
        days.truck_id,
        days.date_day,
        sum({{ seconds_between(
            'greatest(down.down_from, cast(days.date_day as timestamp))',
            'least(coalesce(down.down_until, ' ~ day_end ~ '), ' ~ day_end ~ ')'
        ) }}) / 3600.0 as downtime_hours
    from days
    inner join {{ ref('fct_downtime') }} as down
        on down.truck_id = days.truck_id
        and down.down_from < {{ day_end }}
        and coalesce(down.down_until, {{ day_end }}) > days.date_day
    group by all
),

failures as (
    select truck_id, failure_date as date_day, count(*) as failures
    from {{ ref('fct_failures') }}
    group by all
)

select
    days.truck_id,
    days.date_day,
    trucks.segment,
    trucks.truck_type,
    trucks.model_year,
    days.readings,
    24.0 as calendar_hours,
    cast(days.operating_hours as double) as operating_hours,
    least(coalesce(downtime.downtime_hours, 0), 24.0) as downtime_hours,
    24.0 - least(coalesce(downtime.downtime_hours, 0), 24.0) as available_hours,
    coalesce(failures.failures, 0) as failures,
    coalesce(failures.failures, 0) > 0 as has_failure,
    days.avg_engine_temp_c,
    days.max_engine_temp_c,
    days.avg_oil_pressure_kpa,
    days.min_oil_pressure_kpa,
    days.avg_vibration_mm_s,
    days.max_vibration_mm_s,
    days.avg_coolant_temp_c,
    days.max_coolant_temp_c,
    days.km_driven
from days
left join {{ ref('stg_trucks') }} as trucks on days.truck_id = trucks.truck_id
left join downtime on days.truck_id = downtime.truck_id and days.date_day = downtime.date_day
left join failures on days.truck_id = failures.truck_id and days.date_day = failures.date_day
