-- One row per product run of the milling line. AI4I 2020 has no timestamps: a run is dated by its load.
select
    udi,
    product_id,
    product_type,
    cast(loaded_at as date) as run_date,
    air_temperature_k,
    process_temperature_k,
    process_temperature_k - air_temperature_k as temperature_gap_k,
    rotational_speed_rpm,
    torque_nm,
    torque_nm * rotational_speed_rpm * 2 * pi() / 60 as power_w,
    tool_wear_min,
    coalesce(machine_failure, false) as has_failure,
    tool_wear_failure,
    heat_dissipation_failure,
    power_failure,
    overstrain_failure,
    random_failure
from {{ ref('stg_ai4i_readings') }}
