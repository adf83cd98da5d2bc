-- One row per failure, with the corrective visit that repaired it: the first corrective maintenance of the same
-- truck starting at or after the failure.
with failures as (
    select * from {{ ref('stg_failures') }}
),

corrective as (
    select * from {{ ref('stg_maintenance') }} where kind = 'corrective'
),

trucks as (
    select truck_id, segment, truck_type from {{ ref('stg_trucks') }}
)

select
    failures.failure_id,
    failures.truck_id,
    trucks.segment,
    trucks.truck_type,
    failures.failed_at,
    cast(failures.failed_at as date) as failure_date,
    failures.component,
    failures.severity,
    corrective.maintenance_id as repair_id,
    corrective.started_at as repair_started_at,
    corrective.ended_at as repaired_at,
    {{ seconds_between('failures.failed_at', 'corrective.ended_at') }} / 3600.0 as repair_hours,
    corrective.cost_eur as repair_cost_eur
from failures
{{ asof_left_join('failures', 'corrective', 'truck_id', 'failed_at', '<=', 'started_at', left_key=['failure_id']) }}
left join trucks on failures.truck_id = trucks.truck_id
