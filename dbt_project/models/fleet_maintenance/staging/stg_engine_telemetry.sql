select
    truck_id,
    ts as reading_at,
    engine_temp_c,
    oil_pressure_kpa,
    vibration_mm_s,
    rpm,
    coolant_temp_c,
    mileage_km,
    _loaded_at as loaded_at
from {{ source('fleet_maintenance', 'engine_telemetry') }}
