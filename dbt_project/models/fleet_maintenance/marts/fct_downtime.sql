-- Every interval a truck was off the road: preventive visits, and each failure until the end of its repair
-- (corrective visits linked to no failure count on their own). `down_until` is NULL while still down.
with failures as (
    select * from {{ ref('fct_failures') }}
),

maintenance as (
    select * from {{ ref('stg_maintenance') }}
)

select truck_id, 'preventive' as reason, maintenance_id as event_id, started_at as down_from, ended_at as down_until
from maintenance
where kind = 'preventive'

union all

select truck_id, 'failure' as reason, failure_id as event_id, failed_at as down_from, repaired_at as down_until
from failures

union all

select truck_id, 'corrective' as reason, maintenance_id as event_id, started_at as down_from, ended_at as down_until
from maintenance
where kind = 'corrective'
    and maintenance_id not in (select repair_id from failures where repair_id is not null)
