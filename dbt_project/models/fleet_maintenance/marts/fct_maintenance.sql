select
    maintenance.maintenance_id,
    maintenance.truck_id,
    maintenance.kind,
    maintenance.started_at,
    maintenance.ended_at,
    cast(maintenance.started_at as date) as maintenance_date,
    {{ seconds_between('maintenance.started_at', 'maintenance.ended_at') }} / 3600.0 as duration_hours,
    maintenance.cost_eur
from {{ ref('stg_maintenance') }} as maintenance
