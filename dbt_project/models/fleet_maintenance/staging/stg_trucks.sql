select
    truck_id,
    truck_type,
    segment,
    model_year,
    depot_id,
    _loaded_at as loaded_at
from {{ source('fleet_maintenance', 'trucks') }}
