select
    maintenance_id,
    truck_id,
    kind,
    started_at,
    ended_at,
    cost_eur,
    _loaded_at as loaded_at
from {{ source('fleet_maintenance', 'maintenance') }}
