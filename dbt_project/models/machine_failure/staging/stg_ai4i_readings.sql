select
    udi,
    product_id,
    product_type,
    air_temperature_k,
    process_temperature_k,
    rotational_speed_rpm,
    torque_nm,
    tool_wear_min,
    machine_failure,
    tool_wear_failure,
    heat_dissipation_failure,
    power_failure,
    overstrain_failure,
    random_failure,
    _loaded_at as loaded_at
from {{ source('machine_failure', 'ai4i_readings') }}
