-- One row per pump and day, as landed (the source YAML already renamed and typed the columns).
select
    pump_id,
    reading_date,
    site,
    temperature_c,
    vibration_mm_s,
    pressure_bar,
    runtime_h,
    failed
from {{ source('equipment_failure', 'pump_readings') }}
