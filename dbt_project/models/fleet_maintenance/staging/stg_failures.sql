select
    failure_id,
    truck_id,
    failed_at,
    component,
    severity,
    _loaded_at as loaded_at
from {{ source('fleet_maintenance', 'failures') }}
