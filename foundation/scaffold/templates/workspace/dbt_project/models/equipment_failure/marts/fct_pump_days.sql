-- One row per pump and day: the feature table of the model and the KPI's model.
select
    pump_id,
    reading_date,
    site,
    temperature_c,
    vibration_mm_s,
    pressure_bar,
    runtime_h,
    coalesce(failed, false) as failed
from {{ ref('stg_equipment_failure__pump_readings') }}
